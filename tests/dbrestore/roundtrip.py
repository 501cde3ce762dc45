"""The round trip of issue 23, course by course: back a course of the
reference site up, ``restore`` the snapshot as a new course into a copy of
the site, back the new course up, export it, and compare the export with
Moodle's own backup of the original, equal modulo ids (tests/dbbackup's
``modulo.py``) under what *coursevault's* restore changes
(``coursevault_exceptions``).

Everything runs through the command line (``clirun.run``), in one
repository: one backup run for every course, one restore per course, one
backup run for every restored course.  Each course's comparison is tallied
for the terminal summary (``TALLY``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from dbbackup.mbzcompare import SAME, Comparison, Status, read_archive
from dbbackup.modulo import compare_members
from dbbackup.refsite import Course, RefSite
from dbbackup.restorerules import RESTORED_AS, Exceptions, RestoredAs, at
from dbbackup.sitecheck import mariadb_exceptions

from .clirun import run, run_json
from .sitecopy import SiteCopy

# Moodle's restore rewrites these values (restorerules.RESTORED_AS says how
# and why); coursevault's restore stores the backup's value as it is, so its
# round trip must give back exactly Moodle's value: the rule is left out,
# which makes the comparison stricter, never looser.
COURSEVAULT_KEEPS = {
    ("*", (b"grade_item", b"idnumber")): "an empty idnumber stays '' (Moodle's "
    "restore_grade_item turns it into NULL)",
    ("*grades.xml", (b"grade_grade", b"rawscaleid")): "a NULL rawscaleid stays NULL "
    "(Moodle's get_mappingid makes it 0)",
    ("files.xml", (b"file", b"userid")): "a file without a user keeps none (Moodle's "
    "restore gives it the restoring user)",
    ("course/course.xml", (b"course", b"showcompletionconditions")): "a NULL stays NULL "
    "(courses restored from backups older than the field; Moodle's restore makes it 1)",
    ("course/course.xml", (b"course", b"courseformatoptions")): "a course without format "
    "options gets none (Moodle's restore stores the topics format's defaults)",
}

# An item's grades come in PostgreSQL's heap order (Moodle reads them
# without ORDER BY), which no restore decides: a grade inserted after its
# item's others may land in an earlier page's free space (rich's SCORM
# grades restored from Moodle's own backup: the sixth insert came back
# first), and Moodle's own restore moves grades with the regrade that ends
# it (tests/dbbackup/sitecheck.py: SCTC's and rich's grades were rewritten
# after Moodle's backup).  On PostgreSQL they are compared as a multiset.
GRADES_IN_HEAP_ORDER = (
    ("*grades.xml", b"grade_grades", b"grade_grade"),
    ("gradebook.xml", b"grade_grades", b"grade_grade"),
)
# A forum's discussions too (backup_forum_stepslib reads them without ORDER
# BY, and so does definitions/mod_forum.py): when an earlier test's
# --replace has freed pages of the shared copy, a restored discussion may
# land in one (gen_s's "Discussion 10" came back before "Discussion 1"
# when test_both_doors ran after test_cli_restore in one process).
DISCUSSIONS_IN_HEAP_ORDER = (("activities/forum_*/forum.xml", b"discussions", b"discussion"),)
# A database activity's entries and each entry's field contents alike
# (backup_data_stepslib and definitions/mod_data.py read data_records and
# data_content without ORDER BY): rich's entry came back with its two
# contents the other way round, restored from the ingested backup after
# earlier tests had freed pages of the shared copy (a fresh clone's run,
# s28; the runs before it had them in order).
DATA_IN_HEAP_ORDER = (
    ("activities/data_*/data.xml", b"records", b"record"),
    ("activities/data_*/data.xml", b"contents", b"content"),
)

# Modules whose activities the restore leaves out, with a warning
# (definitions/restore_plan.NEEDS_QUESTION_BANK: no question bank yet).
# modules the restore leaves out (none of the reference site's, since the
# question bank and quizzes are restored); their members count as missing
LEFT_OUT_MODULES: tuple[str, ...] = ()
_LEFT_OUT_FOLDER = re.compile(
    rf"^activities/((?:{'|'.join(LEFT_OUT_MODULES)})_\d+)/" if LEFT_OUT_MODULES else r"(?!)"
)


def _kept(rule: RestoredAs) -> bool:
    return (rule.at.member, rule.at.names) in COURSEVAULT_KEEPS


def renamed_course(theirs_course_xml: bytes, restore: dict[str, Any]) -> tuple[RestoredAs, ...]:
    """What the restore named the new course, as rules: its short and full
    names in course.xml and moodle_backup.xml become the restore's, and only
    where Moodle's held the original's (``calculate_course_names``' form,
    which the round-trip test checks apart)."""
    rules = []
    for name in ("shortname", "fullname"):
        found = re.search(f"<{name}>(.*?)</{name}>".encode(), theirs_course_xml)
        assert found, f"Moodle's course.xml has no {name}"
        ours = escape(str(restore[name])).encode()
        why = f"the restore named the new course's {name} {restore[name]!r}"
        places = [
            ("course/course.xml", ("course", name)),
            ("moodle_backup.xml", ("information", f"original_course_{name}")),
        ]
        if name == "shortname":  # the manifest's <contents><course><title>
            places.append(("moodle_backup.xml", ("course", "title")))
        for member, names in places:
            rules.append(RestoredAs(at(member, *names), re.escape(found.group(1)), ours, why))
    return tuple(rules)


def coursevault_exceptions(
    base: Exceptions,
    theirs_course_xml: bytes,
    restore: dict[str, Any],
    *,
    moodle_restored_the_source: bool = False,
    heap_order: bool = False,
) -> Exceptions:
    """``base`` (the site's own exceptions: tests/dbbackup's, for the
    MariaDB site Moodle's restore made) for a course coursevault restored:
    Moodle's restore's rewrites but those coursevault does not make -- all
    of them when the source site was itself made by Moodle's restore (the
    MariaDB site: its rows carry the rewrites, which coursevault keeps) --,
    the new course's names, and encrypted values by presence (a backup
    encrypts under a fresh IV each time; the modulo comparison holds no key);
    with ``heap_order`` (PostgreSQL), grades, discussions and database
    entries in any order."""
    rules = (
        RESTORED_AS if moodle_restored_the_source else tuple(r for r in RESTORED_AS if not _kept(r))
    )
    return replace(
        base,
        restored_as=rules + renamed_course(theirs_course_xml, restore),
        encrypted_by_presence=True,
        unordered=(
            GRADES_IN_HEAP_ORDER + DISCUSSIONS_IN_HEAP_ORDER + DATA_IN_HEAP_ORDER
            if heap_order
            else ()
        ),
    )


def compare_restored(
    ours: Path, theirs: Path, base: Exceptions, restore: dict[str, Any], *, server: str = ""
) -> Comparison:
    """The backup of a restored course against the backup it was restored
    from (or Moodle's backup of that course), equal modulo ids; on the
    MariaDB ``server``, whose site Moodle's restore made."""
    their_members = read_archive(theirs)
    exc = coursevault_exceptions(
        base,
        their_members["course/course.xml"].data,
        restore,
        moodle_restored_the_source=server == "mariadb",
        heap_order=server == "postgres",
    )
    return compare_members(read_archive(ours), their_members, exc)


@dataclass
class CourseTrip:
    """One course's round trip: the restore's --json report and the
    comparison of the restored course's backup with Moodle's."""

    server: str
    course: Course
    restore: dict[str, Any]
    comparison: Comparison
    backup_warnings: list[str] = field(default_factory=list)

    @property
    def same(self) -> int:
        return sum(o.status in SAME for o in self.comparison.outcomes)

    @property
    def total(self) -> int:
        return len(self.comparison.outcomes)

    def differing(self) -> list[str]:
        """Each member that is not identical or equal modulo ids, with its
        verdict and first difference."""
        lines = []
        for o in self.comparison.problems():
            d = o.first_difference
            where = (
                f" at {d.path or 'line ' + str(d.line)}: ours {d.ours.strip()!r}, "
                f"theirs {d.theirs.strip()!r}"
                if d
                else ""
            )
            lines.append(f"{o.status} {o.path}{where}")
        return lines

    def left_out_folders(self) -> set[str]:
        """Moodle's activity folders of the modules the restore leaves out
        (by module: on MariaDB the restore names that site's folders)."""
        return {
            f"activities/{m.group(1)}"
            for o in self.comparison.outcomes
            if (m := _LEFT_OUT_FOLDER.match(o.path))
        }

    def left_out_members(self) -> list[str]:
        """Moodle's members under those folders."""
        folders = tuple(f + "/" for f in self.left_out_folders())
        return [o.path for o in self.comparison.outcomes if o.path.startswith(folders)]


TALLY: dict[str, list[CourseTrip]] = {}  # server -> every course's round trip


def round_trip_site(
    site: RefSite, copy: SiteCopy, courses: list[Course], work: Path, *, door: str = "database"
) -> dict[str, CourseTrip]:
    """Every course of ``courses`` round-tripped through ``copy``, by
    shortname.  ``door``: where the restored snapshots come from -- a
    ``backup --db`` of the site (``database``) or Moodle's own backup of
    the course ingested (``ingest``)."""
    repo = (
        "-r",
        work / f"repo-{copy.server}-{door}",
        "--cache-dir",
        work / f"cache-{copy.server}-{door}",
    )
    source = site.url(copy.server)
    assert source is not None
    init = run(*repo, "init")
    assert init.code == 0, init
    restored: dict[int, tuple[Course, dict[str, Any]]] = {}
    for course, snapshot in _first_snapshots(repo, site, source, courses, copy.server, door):
        report = run_json(*repo, "restore", snapshot, "--db", copy.url, "--dataroot", copy.dataroot)
        restored[report["courseid"]] = (course, report)
    second = run_json(
        *repo,
        "backup",
        "--db",
        copy.url,
        "--dataroot",
        copy.dataroot,
        *(a for i in restored for a in ("--course", i)),
    )
    trips = {}
    for outcome in second:
        assert outcome["outcome"] == "stored", outcome
        course, report = restored[outcome["course_id"]]
        mbz = work / f"{copy.server}-c{course.pg_id:03d}.mbz"
        run_json(*repo, "export", outcome["snapshot"], "-o", mbz)
        base = mariadb_exceptions(course) if copy.server == "mariadb" else Exceptions()
        comparison = compare_restored(mbz, course.backup, base, report, server=copy.server)
        trips[course.shortname] = CourseTrip(
            copy.server, course, report, comparison, outcome["warnings"]
        )
    TALLY.setdefault(copy.server if door == "database" else f"{copy.server}, ingested", []).extend(
        trips.values()
    )
    return trips


def _first_snapshots(
    repo: tuple[Any, ...], site: RefSite, source: str, courses: list[Course], server: str, door: str
) -> list[tuple[Course, str]]:
    if door == "ingest":
        found = []
        for course in courses:
            result = run_json(*repo, "ingest", course.backup, "--json")
            stored = result if isinstance(result, list) else [result]
            found.append((course, str(stored[0]["snapshot"])))
        return found
    ids = {c.id_on(server): c for c in courses}
    first = run_json(
        *repo,
        "backup",
        "--db",
        source,
        "--dataroot",
        site.dataroot,
        *(a for i in ids for a in ("--course", i)),
    )
    for outcome in first:
        assert outcome["outcome"] == "stored", outcome
    return [(ids[o["course_id"]], str(o["snapshot"])) for o in first]


def table(trips: list[CourseTrip], floors: dict[str, int]) -> list[str]:
    """One line per course: members that agree / total, the floor, then
    each differing member."""
    lines = [f"{'course':<28} {'agree':>5} / {'total':<5} {'floor':>5}  left out"]
    for t in sorted(trips, key=lambda t: t.course.pg_id):
        floor = floors.get(t.course.shortname)
        mark = "" if floor is None or t.same <= floor else "  (above the floor: raise it)"
        left = ", ".join(t.restore["left_out"]) or "-"
        lines.append(
            f"{t.course.shortname[:28]:<28} {t.same:>5} / {t.total:<5} "
            f"{'-' if floor is None else floor:>5}  {left}{mark}"
        )
        lines.extend(f"    {line}" for line in t.differing())
    return lines


def missing(trip: CourseTrip) -> list[str]:
    return [o.path for o in trip.comparison.outcomes if o.status is Status.MISSING]


def summary(terminalreporter: Any) -> None:
    """Issue 23's table per course: members of the restored course's backup
    identical or equal modulo ids to Moodle's backup of the original.
    Printed by tests/conftest.py."""
    from .test_roundtrip import FLOORS

    for server in sorted(TALLY):
        terminalreporter.write_sep(
            "-", f"restore round trip on {server}: members agreeing with Moodle's backup"
        )
        for line in table(TALLY[server], FLOORS.get(server, {})):
            terminalreporter.write_line(line)
