"""Links inside restored text: the backup's markers decoded to the new ids
(``restore_decode_processor`` with each task's ``define_decode_rules``).

A backup turns links into its course into markers (``$@FORUMVIEWBYID*12@$``,
definitions/links.py and each module's encoder); a restore turns them back
into this site's links to the restored items, once every id is known (the
after-restore pass).  A marker whose item is not in the restore keeps the
backup's id -- the link still points at the original, as Moodle's decoder
leaves it -- and is counted; a marker no rule knows stays as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote_plus

from coursevault.structure import registry
from coursevault.structure.restore_engine import RestoreContext

# marker -> (path with $1/$2, tables whose new ids $1 and $2 take)
COURSE_RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "COURSEVIEWBYID": ("/course/view.php?id=$1", ("course",)),
    "COURSESECTIONBYID": ("/course/section.php?id=$1", ("course_sections",)),
    "GRADEINDEXBYID": ("/grade/index.php?id=$1", ("course",)),
    "GRADEREPORTINDEXBYID": ("/grade/report/index.php?id=$1", ("course",)),
    "BADGESVIEWBYID": ("/badges/view.php?type=2&id=$1", ("course",)),
    "USERINDEXVIEWBYID": ("/user/index.php?id=$1", ("course",)),
    "PLUGINFILEBYCONTEXT": ("/pluginfile.php/$1", ("context",)),
    "PLUGINFILEBYCONTEXTURLENCODED": ("/pluginfile.php/$1", ("context",)),
    "FORUMVIEWBYF": ("/mod/forum/view.php?f=$1", ("forum",)),
    "FORUMDISCUSSIONVIEW": ("/mod/forum/discuss.php?d=$1", ("forum_discussions",)),
    "FORUMDISCUSSIONVIEWPARENT": ("/mod/forum/discuss.php?d=$1&parent=$2",
                                  ("forum_discussions", "forum_posts")),
    "FORUMDISCUSSIONVIEWINSIDE": ("/mod/forum/discuss.php?d=$1#$2",
                                  ("forum_discussions", "forum_posts")),
    "QUIZVIEWBYQ": ("/mod/quiz/view.php?q=$1", ("quiz",)),
}
_MARKER = re.compile(r"\$@([A-Z]+)\*([0-9]+)(?:\*([0-9]+))?@\$")
_FILEPHP = (("$@SLASH@$", "/"), ("$@FORCEDOWNLOAD@$", "?forcedownload=1"))


def rules() -> dict[str, tuple[str, tuple[str, ...]]]:
    """The course rules and every installed activity's index and view links."""
    found = dict(COURSE_RULES)
    for name in registry.activities():
        found.setdefault(f"{name.upper()}INDEX", (f"/mod/{name}/index.php?id=$1", ("course",)))
        found.setdefault(f"{name.upper()}VIEWBYID",
                         (f"/mod/{name}/view.php?id=$1", ("course_modules",)))
    return found


def site_wwwroot(rc: RestoreContext) -> str:
    """The site's address, as its local MNet host records it (the database
    holds no ``$CFG->wwwroot``; the backup side reads it the same way)."""
    row = rc.writer.one("config", {"name": "mnet_localhost_id"})
    host = rc.writer.one("mnet_host", {"id": row["value"]}) if row and row.get("value") else None
    return str(host["wwwroot"]) if host and host.get("wwwroot") else ""


def decode(rc: RestoreContext, text: str, wwwroot: str, courseid: int,
           known: dict[str, tuple[str, tuple[str, ...]]]) -> str:
    def one(m: re.Match[str]) -> str:
        rule = known.get(m.group(1))
        if rule is None:
            return m.group(0)
        path, tables = rule
        for n, (old, table) in enumerate(zip((m.group(2), m.group(3)), tables, strict=False)):
            if old is None:
                continue
            new = _new_id(rc, table, old)
            if new is None:
                rc.unmapped[f"link {m.group(1)} to {table} {old}"] += 1
            path = path.replace(f"${n + 1}", str(new if new is not None else old))
        url = wwwroot + path
        return quote_plus(url, safe="").replace("~", "%7E") \
            if m.group(1).endswith("URLENCODED") else url

    text = _MARKER.sub(one, text)
    if "$@FILEPHP@$" in text:
        text = text.replace("$@FILEPHP@$", f"{wwwroot}/file.php/{courseid}")
        for marker, value in _FILEPHP:
            text = text.replace(marker, value)
    return text


def _new_id(rc: RestoreContext, table: str, old: str) -> int | None:
    if table == "context":
        contexts: dict[str, int] = rc.later.get("contexts", [{}])[0]
        return contexts.get(old)
    return rc.ids.get(table, old)


def decode_links(rc: RestoreContext, courseid: int,
                 extra: Iterable[tuple[str, int, str, str]] = ()) -> int:
    """Rewrite every restored text that holds a marker; returns how many."""
    texts = [*rc.later.get("links", []), *extra]
    if not texts:
        return 0
    known, wwwroot = rules(), site_wwwroot(rc)
    for table, row_id, column, text in texts:
        rc.writer.update(table, row_id, {column: decode(rc, text, wwwroot, courseid, known)})
    return len(texts)
