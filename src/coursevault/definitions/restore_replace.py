"""``--into COURSEID --replace``: the course's content deleted, then the
backup restored into the same course, in the restore's one transaction.

Moodle's "Delete the contents of the existing course and then restore"
(``TARGET_EXISTING_DELETING``) calls ``remove_course_contents``: every
activity (through its plugin), block, section, grade item and category,
grade, completion record, group and grouping, enrolment and role
assignment, question of the course's banks, comment, rating, tag, event,
filter and file of the course goes, the course row and its context stay,
and the course's settings are then taken from the backup.

Which rows are the course's is not a hand-kept list here: it is what a
database backup of the course reads.  The backup's own plan runs on the
restore's connection with every setting on (users, histories...) and a
reader that notes each row it hands out, by table and id; a row is the
course's when

- it names a context (``contextid``, ``parentcontextid``): that context is
  the course's or below it;
- else it names a course (``courseid``, ``course``): this one;
- else it was read for a member that is the course's content -- not
  ``users.xml``, ``roles.xml`` (role definitions) or ``moodle_backup.xml``;

and never a row of a site-wide table (users, roles, tags, the question
bank's system categories, competency frameworks, custom field
definitions...).  Questions follow their category (entry, version,
question, then the question type's rows), an LTI type's settings their
type.  Rows a backup does not read but that still belong to what goes --
a module's users' favourites, the completion and views of its course
modules, the course's grade history tables, a module of a plugin without
a definition -- are found by the columns naming the course, its removed
contexts and course modules (``sweep``), log tables excepted (Moodle keeps
the logs of a deleted course too).  Users are never deleted.

Section 0 stays (its id, as Moodle keeps it); the backup's section 0 is
written over it.  File rows go with their context; their contents stay in
the file store until the transaction has committed (nothing there changes
before, so a rollback needs nothing of it); then those no row names any
more move to Moodle's trash folder, as Moodle's file system moves a
content its last file leaves (``restore/dbrestore.py``).
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from coursevault.definitions import restore_course
from coursevault.definitions.restore_common import restore_tags
from coursevault.definitions.restore_course import finals
from coursevault.errors import SiteDataError
from coursevault.moodledb.site import SiteReader
from coursevault.moodledb.sitewriter import SiteWriter
from coursevault.structure.restore_engine import RestoreContext, note_markers

Row = dict[str, Any]

# members whose rows are the site's, not the course's
FOREIGN_MEMBERS = ("users.xml", "roles.xml", "moodle_backup.xml")
# tables whose rows a course's backup reads but never owns
SITE_TABLES = frozenset({
    "config", "config_plugins", "mnet_host", "course", "course_categories", "context",
    "modules", "block", "role", "tag", "tag_area", "tag_coll", "tag_correlation", "user",
    "capabilities", "competency",
    "competency_framework", "customfield_category", "customfield_field", "files_reference",
    "repository", "repository_instances", "lti_tool_proxies", "h5p_libraries", "badge_backpack",
    "logstore_standard_log", "log",
})
# tables whose course column tells the course's rows from the site's (a
# scale of the site has courseid 0); elsewhere a course column another
# value holds means something else (a feedback's completions: 0)
SHARED_BY_COURSE = frozenset({"scale", "grade_outcomes", "lti_types", "feedback_template"})
# a course's badges are archived as the site's, not deleted
# (badges_handle_course_deletion): users keep the badges they earned
BADGE_TABLES = frozenset({"badge", "badge_criteria", "badge_criteria_param",
                          "badge_criteria_met", "badge_issued", "badge_manual_award",
                          "badge_alignment", "badge_related", "badge_endorsement"})
BADGE_TYPE_SITE, BADGE_STATUS_ARCHIVED = 1, 4
CONTEXT_COLUMNS = ("contextid", "parentcontextid")
COURSE_COLUMNS = ("courseid", "course")
MODULE_COLUMNS = ("coursemoduleid", "cmid")
QUESTION_COLUMNS = ("questionid", "question")
# a row that belongs to the row its column names
CHAINS = {"question_bank_entries": ("questioncategoryid", "question_categories"),
          "question_versions": ("questionbankentryid", "question_bank_entries"),
          "lti_types_config": ("typeid", "lti_types")}
# tables a backup reads only joined to another (a SCORM track's attempt)
JOINED = {"scorm_attempt": ("scormid", "scorm")}
# tables the sweep leaves alone: logs, statistics, caches, the site's tasks
SWEEP_SKIP = ("logstore_", "log", "stats_", "analytics_", "task_", "backup_", "search_",
              "tool_", "message", "notification", "cache_", "upgrade_", "config", "user",
              "portfolio_", "mnet", "oauth2", "repository", "sessions", "external_",
              "course", "context", "badge")
# ...but these course tables are swept
SWEEP_COURSE_TABLES = ("course_sections", "course_modules", "course_format_options",
                       "course_completions", "course_completion_criteria",
                       "course_completion_aggr_methd", "course_completion_crit_compl",
                       "course_completion_defaults", "course_modules_completion",
                       "course_modules_viewed", "course_modules_availability")
_STAR = re.compile(r"^\s*SELECT\s+(?:(\w+)\.)?\*[^{]*?\bFROM\s+\{(\w+)\}(?:\s+(?:AS\s+)?(\w+))?",
                   re.IGNORECASE)
_IDS = re.compile(r"^\s*SELECT\s+(?:(\w+)\.)?id\s*,[^{]*?\bFROM\s+\{(\w+)\}(?:\s+(?:AS\s+)?(\w+))?",
                  re.IGNORECASE)


@dataclass
class Removal:
    """What the replace deletes: ids per table, and where it found them."""

    courseid: int
    coursecontext: int
    contexts: set[int] = field(default_factory=set)  # the course's context and below
    rows: dict[str, set[int]] = field(default_factory=dict)
    swept: dict[str, int] = field(default_factory=dict)  # rows found by the sweep
    section_zero: int | None = None
    badges: list[int] = field(default_factory=list)  # archived, not deleted
    contents: set[str] = field(default_factory=set)  # of the files rows deleted
    warnings: list[str] = field(default_factory=list)

    def add(self, table: str, row_id: Any) -> bool:
        ids = self.rows.setdefault(table, set())
        new = int(row_id) not in ids
        ids.add(int(row_id))
        return new

    def has(self, table: str, row_id: Any) -> bool:
        try:
            return int(row_id) in self.rows.get(table, ())
        except (TypeError, ValueError):
            return False

    def counts(self) -> dict[str, int]:
        return {t: len(ids) for t, ids in sorted(self.rows.items()) if ids}


class _NotingReader(SiteReader):
    """A reader that notes (table, row) of every row it hands out whose
    table it can tell: a table read by name, or SQL selecting one table's
    ``*`` (``SELECT p.* FROM {forum_posts} p JOIN ...``) or its ``id``."""

    def __init__(self, conn: Any, prefix: str) -> None:
        super().__init__(conn, prefix)
        self.noted: list[tuple[str, Row]] = []

    def rows(self, table: str, where: Mapping[str, Any] | None = None, *,
             order: str | None = None, columns: Sequence[str] | None = None) -> Iterator[Row]:
        for row in super().rows(table, where, order=order, columns=columns):
            if "id" in row:
                self.noted.append((table, row))
            yield row

    def sql(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        table = sql_table_of(sql)
        for row in super().sql(sql, params):
            if table is not None and "id" in row:
                self.noted.append((table, row))
            yield row


def sql_table_of(sql: str) -> str | None:
    """The table whose ids an SQL source's ``id`` column holds: its FROM
    table when it selects that table's ``*`` (``SELECT p.* FROM
    {forum_posts} p JOIN ...``, ``SELECT * FROM {event} WHERE``) or, from
    that table alone, a column list starting with ``id``; None otherwise
    (another table's ``t.id``, an expression: the sweep finds those rows
    by their course or context)."""
    m = _STAR.match(sql)
    if m is not None:
        alias, table, named = m.groups()
        if alias is None:
            return table if " JOIN " not in sql.upper() else None
        return table if alias in (named, table) else None
    m = _IDS.match(sql)
    if m is not None and (m.group(1) in (m.group(2), m.group(3))
                          or (m.group(1) is None and " JOIN " not in sql.upper())):
        return m.group(2)
    return None


def plan_removal(writer: SiteWriter, courseid: int, coursecontext: int) -> Removal:
    """The course's rows, read as its backup reads them (no write)."""
    from coursevault.definitions.course_plan import course_plan
    from coursevault.definitions.run import start_run
    from coursevault.structure.context import SETTINGS
    from coursevault.structure.plan import execute

    course = writer.one("course", {"id": courseid})
    if course is not None and str(course.get("category") or "0") == "0":
        raise SiteDataError(f"course {courseid} is the site's front page: --replace "
                            "deletes the content of a course only")
    removal = Removal(courseid, coursecontext)
    ctx_row = writer.one("context", {"id": coursecontext})
    path = str(ctx_row["path"]) if ctx_row else f"/{coursecontext}"
    removal.contexts = {coursecontext} | {int(r[0]) for r in writer.conn.execute(
        _sql(writer, "SELECT id FROM {context} WHERE path LIKE :p"), {"p": path + "/%"})}
    reader = _NotingReader(writer.conn, writer.prefix)
    settings = {**dict.fromkeys(SETTINGS, True), "anonymize": False, "logs": False}
    run = start_run(reader, courseid, settings)
    tasks = course_plan(run)
    for task in tasks:
        task.extra = None  # the file store's contents are not rows
    held: list[tuple[str, str, Row]] = []
    for member, _data in execute(tasks, run, transform=None, encrypt=lambda _v: ""):
        for table, row in reader.noted:
            if not _decide(removal, member, table, row):
                held.append((member, table, row))
        reader.noted.clear()
    sweep(writer, removal)
    _questions(writer, removal)
    for member, table, row in held:  # what waited for its questions or its type
        if _follows(removal, member, table, row):
            removal.add(table, row["id"])
    section = writer.one("course_sections", {"course": courseid, "section": 0})
    if section is not None:
        removal.section_zero = int(section["id"])
        removal.rows.get("course_sections", set()).discard(int(section["id"]))
    removal.rows.pop("context", None)
    removal.rows["context"] = removal.contexts - {coursecontext}
    files = sorted(removal.rows.get("files", ()))
    removal.contents = {str(r["contenthash"]) for r in writer.rows_in(
        "files", "id", files, columns=("contenthash",))} if files else set()
    return removal


def _decide(removal: Removal, member: str, table: str, row: Row) -> bool:
    """Note the row as the course's when it is; False when it waits for
    what it follows (a question's rows, an LTI type's) or is not."""
    if member in FOREIGN_MEMBERS or table in SITE_TABLES or table in BADGE_TABLES:
        return True
    if table == "files" and row.get("component") in ("backup", "badges"):
        return True  # the course's backups stay; badge images move with their badge
    if table in CHAINS or table == "question":
        return False
    if table == "customfield_data" and member == "course/course.xml":
        return True  # the course's own custom fields: the restore does not write them yet
    for column in CONTEXT_COLUMNS:
        if column in row:
            if _int(row[column]) in removal.contexts:
                removal.add(table, row["id"])
            return True
    for column in COURSE_COLUMNS:
        if column in row and (table in SHARED_BY_COURSE
                              or _int(row[column]) == removal.courseid):
            if _int(row[column]) == removal.courseid:
                removal.add(table, row["id"])
            return True
    if member == "questions.xml":
        return not any(c in row for c in QUESTION_COLUMNS)
    removal.add(table, row["id"])
    return True


def _follows(removal: Removal, member: str, table: str, row: Row) -> bool:
    chain = CHAINS.get(table)
    if chain is not None:
        return removal.has(chain[1], row.get(chain[0]))
    if table == "question":
        return removal.has("question", row["id"])
    if member == "questions.xml":
        return any(removal.has("question", row.get(c)) for c in QUESTION_COLUMNS if c in row)
    return False


def _questions(writer: SiteWriter, removal: Removal) -> None:
    """The entries, versions and questions of the categories that go
    (found or swept): what ``question_delete_course`` deletes."""
    categories = list(removal.rows.get("question_categories", ()))
    if not categories:
        return
    entries = [int(r["id"]) for r in writer.rows_in(
        "question_bank_entries", "questioncategoryid", categories, columns=("id",))]
    versions = list(writer.rows_in("question_versions", "questionbankentryid", entries,
                                   columns=("id", "questionid"))) if entries else []
    for row_id in entries:
        removal.add("question_bank_entries", row_id)
    for row in versions:
        removal.add("question_versions", row["id"])
        removal.add("question", row["questionid"])


def sweep(writer: SiteWriter, removal: Removal) -> None:
    """Rows no backup reads that name the course, one of its removed
    contexts or course modules: counted apart (``swept``)."""
    below = sorted(removal.contexts - {removal.coursecontext})
    for row in writer.rows("course_modules", {"course": removal.courseid}, ("id",)):
        removal.add("course_modules", row["id"])
    cms = sorted(removal.rows.get("course_modules", ()))
    for table in writer.table_names():
        if table in SITE_TABLES or (table.startswith(SWEEP_SKIP)
                                    and table not in SWEEP_COURSE_TABLES):
            continue
        columns = writer.columns(table)
        found: list[int] = []
        for column in CONTEXT_COLUMNS:  # ids: an LTI context's contextid is text
            if columns.get(column, "").startswith("I") and below:
                found += [int(r["id"]) for r in writer.rows_in(table, column, below,
                                                               columns=("id",))]
        for column in COURSE_COLUMNS:
            if columns.get(column, "").startswith("I"):
                found += [int(r["id"]) for r in writer.rows(table, {column: removal.courseid},
                                                            ("id",))]
        for column in MODULE_COLUMNS:
            if columns.get(column, "").startswith("I") and cms:
                found += [int(r["id"]) for r in writer.rows_in(table, column, cms,
                                                               columns=("id",))]
        new = sum(removal.add(table, i) for i in found)
        if new:
            removal.swept[table] = new
    for row in writer.rows_in("tag_instance", "itemid", [removal.courseid],
                              {"component": "core", "itemtype": "course"}, ("id",)):
        if removal.add("tag_instance", row["id"]):
            removal.swept["tag_instance"] = removal.swept.get("tag_instance", 0) + 1
    for table, (column, parent) in JOINED.items():
        ids = sorted(removal.rows.get(parent, ()))
        for row in writer.rows_in(table, column, ids, columns=("id",)) if ids else ():
            if removal.add(table, row["id"]):
                removal.swept[table] = removal.swept.get(table, 0) + 1
    _modules_without_definition(writer, removal)
    removal.badges = [int(r["id"]) for r in writer.rows(
        "badge", {"courseid": removal.courseid}, ("id",))]


def _modules_without_definition(writer: SiteWriter, removal: Removal) -> None:
    """A module of a plugin coursevault has no definition for: its row in
    the plugin's table goes with its course module (what ``--replace``
    cannot know of its other tables is said)."""
    from coursevault.structure import registry

    ids = sorted(removal.rows.get("course_modules", ()))
    if not ids:
        return
    names = {int(r["id"]): str(r["name"]) for r in writer.rows("modules", {}, ("id", "name"))}
    plugins = registry.activities()
    left: dict[str, int] = {}
    for cm in writer.rows_in("course_modules", "id", ids, columns=("module", "instance")):
        name = names.get(int(cm["module"]), "")
        if name and name not in plugins and writer.site_has_table(name):
            # (the backup's read of its title may have noted the row already)
            removal.add(name, cm["instance"])
            left[name] = left.get(name, 0) + 1
    for name, count in sorted(left.items()):
        removal.warnings.append(
            f"--replace: mod_{name} has no definition: its {count} instance row(s) and "
            f"course modules are deleted, rows of its other tables are left")


def remove(writer: SiteWriter, removal: Removal) -> None:
    """Delete what ``plan_removal`` found, and empty section 0."""
    for table, ids in sorted(removal.rows.items()):
        if ids:
            writer.delete(table, sorted(ids))
    if removal.section_zero is not None:
        writer.update("course_sections", removal.section_zero, {"sequence": ""})
    archive_badges(writer, removal)


def archive_badges(writer: SiteWriter, removal: Removal) -> None:
    """``badges_handle_course_deletion``: the course's badges become
    archived site badges (those who earned one keep it), their images move
    to the system context (their path hash with them)."""
    if not removal.badges:
        return
    for badge in removal.badges:
        writer.update("badge", badge, {"type": BADGE_TYPE_SITE, "courseid": None,
                                       "status": BADGE_STATUS_ARCHIVED})
    system = writer.one("context", {"contextlevel": 10, "instanceid": 0})
    if system is None:
        return
    for f in list(writer.rows_in("files", "itemid", removal.badges,
                                 {"contextid": removal.coursecontext, "component": "badges",
                                  "filearea": "badgeimage"})):
        path = (f"/{system['id']}/badges/badgeimage/{f['itemid']}{f['filepath']}"
                f"{f['filename']}")
        writer.update("files", int(f["id"]), {
            "contextid": system["id"],
            "pathnamehash": hashlib.sha1(path.encode()).hexdigest()})


def reset_course(rc: RestoreContext, data: bytes, courseid: int, contextid: int,
                 start_date: int | None) -> None:
    """The course's settings from the backup's course.xml (Moodle's
    ``overwrite_conf``): names made unique among the other courses, an
    idnumber another course uses dropped; the category, sort order and the
    course's id and context stay."""
    root = ET.fromstring(data)
    skip = {"id", "category", "sortorder", "tags", "customfields", "courseformatoptions",
            "originalcourseid"}
    values: dict[str, Any] = {k: v for k, v in finals(root).items() if k not in skip}
    short = str(values.get("shortname") or "")
    taken = {str(r["id"]) for r in rc.writer.rows("course", {"shortname": short}, ("id",))}
    if taken - {str(courseid)}:
        values.pop("shortname", None)
        values.pop("fullname", None)
        rc.warnings.append(f"--replace: the backup's short name {short!r} is another "
                           "course's: the course keeps its names")
    idnumber = values.get("idnumber")
    if idnumber and any(str(r["id"]) != str(courseid) for r in rc.writer.rows(
            "course", {"idnumber": idnumber}, ("id",))):
        values["idnumber"] = ""
    if start_date is not None:
        end = int(values.get("enddate") or 0)
        if end:
            values["enddate"] = end + start_date - int(values.get("startdate") or 0)
        values["startdate"] = start_date
    values["cacherev"] = rc.param("now")
    rc.writer.update("course", courseid, values)
    note_markers(rc, "course", courseid, values)
    restore_tags(rc, root.find("tags"), "core", "course", courseid, contextid)
    for opt in root.iterfind("courseformatoptions/courseformatoption"):
        o = finals(opt)
        if o.get("sectionid") in (None, "0"):
            rc.writer.insert("course_format_options", {
                "courseid": courseid, "format": o.get("format"), "sectionid": 0,
                "name": o.get("name"), "value": o.get("value")})


def replace_section(rc: RestoreContext, data: bytes, section_zero: int | None) -> bool:
    """The backup's section 0 over the course's (kept) one; False for any
    other section (restored as a new one)."""
    if section_zero is None or str(finals(ET.fromstring(data)).get("number")) != "0":
        return False
    restore_course.restore_section(rc, data, over=section_zero)
    return True


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _sql(writer: SiteWriter, text: str) -> Any:
    import sqlalchemy as sa

    return sa.text(re.sub(r"\{(\w+)\}", lambda m: writer.prefix + m.group(1), text))
