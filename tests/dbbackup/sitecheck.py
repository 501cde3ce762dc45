"""Backing the whole reference site up and tallying the comparison, shared by
the reference-site test and the terminal summary that prints its table."""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from coursevault import api
from coursevault.store.backend import LocalBackend
from coursevault.store.repository import Repository
from coursevault.structure import registry

from .mbzcompare import SAME, Comparison, Status, compare_archives, plugin_of
from .modulo import compare_archives_modulo
from .refsite import KNOWN_GAPS, Course, RefSite, RefSiteDatabase
from .restorerules import Exceptions

# Members every course has that are "core" but written from what the
# activities hold: identical only once every activity of the course is defined.
TALLY: dict[str, dict[str, Counter[str]]] = {}  # server -> plugin -> verdict -> members


def shipped(plugin: str) -> bool:
    """Plugins whose members must all be identical: the core parts, every
    block, and every activity with a definition."""
    if plugin.startswith("mod_"):
        return plugin[4:] in registry.activities()
    return True  # core parts, and every block: Moodle's default block task writes any


def _sorted_children(
    xml: bytes, parent_tag: Callable[[str], bool], key: Callable[[etree._Element], int]
) -> bytes:
    """The document with the children of matching elements sorted (both sides
    of a comparison go through it, so its own serialisation does not matter)."""
    root = etree.fromstring(xml, etree.XMLParser(remove_blank_text=True))
    for element in root.iter():
        if isinstance(element.tag, str) and parent_tag(element.tag):
            element[:] = sorted(element, key=key)
    return etree.tostring(root)


def grades_by_id(xml: bytes) -> bytes:
    """Each grade item's grades in id order."""
    return _sorted_children(xml, lambda tag: tag == "grade_grades", lambda e: int(e.get("id") or 0))


def inforef_by_id(xml: bytes) -> bytes:
    """Each kind of reference in id order."""
    return _sorted_children(
        xml, lambda tag: tag.endswith("ref"), lambda e: int(e.findtext("id") or 0)
    )


# Orders Moodle read without ORDER BY that the dump no longer holds -- the
# only differences forgiven on PostgreSQL, each compared order-blind and no
# more (tests/definitions/test_activity.py has the evidence):
# - SCTC (12) and rich (38): grade_grades rows rewritten after Moodle's backup
#   (a regrade moved them in the heap), so their database order changed;
#   rich's gradebook.xml reads the same table for its course, category and
#   manual items: ours is the dump's heap (ctid) order, Moodle's is a
#   permutation of the same rows that for items 91 and 105 is neither heap
#   nor id order (tests/definitions/test_quiz.py, GRADES_MOVED);
# - rich's scorm_219 inforef.xml: Moodle's read of its temporary ids table
#   came back in recording order there (every other inforef is ascending).
ORDER_NOT_IN_DATA: list[tuple[int, str, Callable[[bytes], bytes]]] = [
    (12, "activities/*/grades.xml", grades_by_id),
    (38, "activities/*/grades.xml", grades_by_id),
    (38, "gradebook.xml", grades_by_id),
    (38, "activities/scorm_219/inforef.xml", inforef_by_id),
    # the same read of the temporary table in recording order, when the
    # final task lists rich's files: SCORM's and IMS CP's come elsewhere
    (
        38,
        "files.xml",
        lambda xml: _sorted_children(
            xml, lambda tag: tag == "files", lambda e: int(e.get("id") or 0)
        ),
    ),
]


def index_lines(raw: bytes) -> bytes:
    """The index's lines in sorted order."""
    head, _, rest = raw.partition(b"\n")
    return head + b"\n" + b"\n".join(sorted(rest.split(b"\n")))


def _forgiven(
    server: str, course: Course, path: str, ours: bytes | None, theirs: bytes | None
) -> bool:
    if ours is None or theirs is None:
        return False
    if path == ".ARCHIVE_INDEX":
        # Moodle lists the members in its file system's directory order (a
        # walk of the temporary folder: ext4 hash order, two "activities/"
        # lines and all), which no writer elsewhere can know; the entries,
        # their kinds and sizes must be the same.  (mtimes are masked.)
        return index_lines(ours) == index_lines(theirs)
    if server != "postgres":
        return False
    for pg_id, pattern, normal in ORDER_NOT_IN_DATA:
        if course.pg_id == pg_id and fnmatch.fnmatch(path, pattern):
            return normal(ours) == normal(theirs)
    return False


@dataclass
class SiteBackup:
    """Our export of each course (by PostgreSQL id) and what the run warned."""

    exports: dict[int, Path] = field(default_factory=dict)
    warnings: dict[int, list[str]] = field(default_factory=dict)
    complete: dict[int, bool] = field(default_factory=dict)  # no activity left out


def back_up_site(site: RefSite, db: RefSiteDatabase, root: Path) -> SiteBackup:
    """``backup --db`` of every course, each exported to ``cNNN.mbz``."""
    Repository.init(LocalBackend(root / "repo"))
    repo = Repository.open(LocalBackend(root / "repo"), cache_dir=root / "cache")
    by_id = {c.id_on(db.server): c for c in site.courses}
    request = api.BackupRequest(db_url=db.url, dataroot=str(site.dataroot), courses=sorted(by_id))
    done = SiteBackup()
    try:
        for outcome in api.backup(repo, request):
            course = by_id[outcome.courseid]
            assert outcome.outcome == "stored", outcome.error
            assert outcome.result is not None
            path = root / f"c{course.pg_id:03d}.mbz"
            api.export(repo, outcome.result.snapshot, str(path))
            done.exports[course.pg_id] = path
            done.warnings[course.pg_id] = outcome.warnings
            done.complete[course.pg_id] = not any(
                w.startswith("no definition for") for w in outcome.warnings
            )
    finally:
        repo.close()
    return done


# What the MariaDB site (made by Moodle restoring the reference backups)
# cannot match, per course (PostgreSQL id): facts of the oracle, each pinned
# by test_refsite.py, never of our writer.  Encrypted values are compared by
# presence on every MariaDB course: that site has no backup key (our run
# there encrypts under a one-off key) and its LTI key and password are NULL
# after the restore (tests/dbbackup/README.md, "Known gap in the oracle").
MARIADB_EXCEPTIONS: dict[int, Exceptions] = {
    38: Exceptions(
        # rich's SCORM and IMS CP packages were unpacked again by the restore
        # into other JPEG contents, which filedir.tar.zst lacks (README,
        # "Known gap in the oracle"; test_refsite.KNOWN_GAPS)
        regenerated=frozenset((c.encode(), a.encode()) for c, a in KNOWN_GAPS["mariadb"]),
        # the restore did not recreate forum_207's role override (two
        # capabilities of role 5): test_refsite.MODULE_OVERRIDES pins them
        dropped=(
            ("activities/forum_207/roles.xml", b"role_overrides", b"override"),
            ("activities/forum_207/inforef.xml", b"inforef", b"roleref"),
        ),
        encrypted_by_presence=True,
    ),
}


def mariadb_exceptions(course: Course) -> Exceptions:
    return MARIADB_EXCEPTIONS.get(course.pg_id, Exceptions(encrypted_by_presence=True))


def exceptions_for_backup(backup: Path) -> Exceptions:
    """The MariaDB exceptions of the reference course whose Moodle backup is
    ``backup`` (``cNNN-<shortname>.mbz``); the default ones for another."""
    m = re.match(r"c(\d{3})-", backup.name)
    pg_id = int(m.group(1)) if m else 0
    return MARIADB_EXCEPTIONS.get(pg_id, Exceptions(encrypted_by_presence=True))


def compare(
    server: str, course: Course, ours: Path, key: bytes, our_key: bytes | None
) -> Comparison:
    """Byte identity but for run-specific values on PostgreSQL (the site
    Moodle's backups were made on); equal modulo what a restore changes on
    MariaDB (modulo.py), whose copy of the site Moodle's restore made."""
    if server == "mariadb":
        return compare_archives_modulo(ours, course.backup, mariadb_exceptions(course))
    return compare_archives(ours, course.backup, backup_key=key, our_key=our_key)


def compare_course(
    server: str,
    course: Course,
    ours: Path,
    key: bytes,
    our_key: bytes | None,
    *,
    complete: bool = True,
) -> tuple[list[str], list[str]]:
    """(problems in shipped plugins, problems elsewhere), each member's
    verdict tallied per plugin.

    A course the backup could not take whole (``complete`` False: an
    activity without a definition was left out, as the run warned) has its
    course-wide members -- moodle_backup.xml, the gradebook, questions.xml,
    files.xml and files/, the index -- tallied but not required: they list
    what was left out."""
    comparison = compare(server, course, ours, key, our_key)
    tally = TALLY.setdefault(server, {})
    must, may = [], []
    for o in comparison.outcomes:
        plugin = plugin_of(o.path)
        forgiven = o.status not in SAME and _forgiven(server, course, o.path, o.ours, o.theirs)
        tally.setdefault(plugin, Counter())["forgiven" if forgiven else str(o.status)] += 1
        if o.status not in (*SAME, Status.EXCUSED) and not forgiven:
            line = f"{o.path}: {o.status}" + (
                f" ({o.first_difference})" if o.first_difference else ""
            )
            required = shipped(plugin) and (complete or plugin not in ("core", "files"))
            (must if required else may).append(line)
    return must, may


def table(server: str) -> str:
    """The per-plugin share of members that agree: identical (or forgiven,
    ORDER_NOT_IN_DATA) on PostgreSQL; on MariaDB identical, or equal modulo
    ids, with the members missing as a named exception says ("excused")
    counted apart."""
    tally = TALLY.get(server, {})
    if server == "postgres":
        rows = [f"{'plugin':<24} identical  total  share  shipped"]
    else:
        rows = [f"{'plugin':<24} identical  modulo ids  total  share  excused  shipped"]
    for name in sorted(tally):
        c = tally[name]
        identical = c[Status.IDENTICAL] + c["forgiven"]
        same, total = identical + c[Status.MODULO_IDS], sum(c.values())
        share = f"{100 * same // total:>4}%"
        shipped_ = "yes" if shipped(name) else "no"
        if server == "postgres":
            rows.append(f"{name:<24} {identical:>9}  {total:>5}  {share}  {shipped_}")
        else:
            rows.append(
                f"{name:<24} {identical:>9}  {c[Status.MODULO_IDS]:>10}  {total:>5}  {share}  "
                f"{c[Status.EXCUSED]:>7}  {shipped_}"
            )
    return "\n".join(rows)


def summary(terminalreporter: Any) -> None:
    """The share of identical members per plugin, per server (issue 21 asks
    for it printed with every run of the suite); on MariaDB, identical or
    equal modulo what a restore changes.  Printed by tests/conftest.py."""
    for server in sorted(TALLY):
        what = "identical members" if server == "postgres" else "identical or equal modulo ids"
        terminalreporter.write_sep("-", f"reference site on {server}: {what}")
        terminalreporter.write_line(table(server))
