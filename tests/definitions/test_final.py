"""The final task's members against Moodle's own backups of the reference site.

The final task writes from what every other task annotated; to test it
alone, each task's annotations are taken from Moodle's own backup of the
course (its inforef.xml, and the scales its grades.xml annotates straight as
final), in plan order, as Moodle's move to final would have left them.
Activities whose module has no definition yet get an empty one, so the plan
(and moodle_backup.xml's contents and settings) is the whole course's.

The run is given the start time of Moodle's backup, so moodle_backup.xml's
name, filename setting and date must match too; only the random backup id
is masked.

Run alone for the inner loop: ``python tests/definitions/test_final.py 38 --diff``.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reference import DATAROOT, POSTGRES, SITE, backup_members, postgres_reader, unavailable

from coursevault.definitions import course_plan as course_plan_module
from coursevault.definitions.course_plan import course_plan
from coursevault.definitions.run import start_run, transformer
from coursevault.moodledb.site import SiteReader, open_engine, read_transaction
from coursevault.structure.context import BackupRun, IdSet
from coursevault.structure.plan import FileRef, Task, execute
from coursevault.structure.registry import Plugin

FINAL_MEMBERS = ("groups.xml", "questions.xml", "users.xml", "roles.xml", "gradebook.xml",
                 "grade_history.xml", "completion.xml", "badges.xml", "scales.xml",
                 "outcomes.xml", "files.xml", "moodle_backup.xml", "moodle_backup.log")
# members whose order or content still depends on what is not ours (see the report)
KNOWN: set[tuple[str, str]] = {
    # grade rows 162 (item 104) and 151/154 (item 105) sit elsewhere in the
    # database as dumped than when Moodle read them: not reproducible
    ("38", "gradebook.xml"),
    # the temp-table model puts scorm's package files 337/338 before its
    # content files and moves three imscp files: the real interleaving of a
    # task's annotations is not in inforef.xml (see final_temptable.py)
    ("38", "files.xml"),
}
_RUN_SPECIFIC = [  # the run is given Moodle's start time: only the random id is masked
    (re.compile(rb'backup_id="[0-9a-f]{32}"'), b'backup_id="ID"'),
]


def mask(data: bytes) -> bytes:
    for pattern, replacement in _RUN_SPECIFIC:
        data = pattern.sub(replacement, data)
    return data


class _AnyModule(dict[str, Plugin]):
    """Every module has a definition: the real one, or one writing nothing."""

    def get(self, key: str, default: Any = None) -> Plugin:  # type: ignore[override]
        return super().get(key) or Plugin(key, steps=lambda ctx: [])


def _inforef(ref: dict[str, bytes], directory: str) -> list[tuple[str, str]]:
    """A task's annotations as its inforef.xml lists them (by id, per item)."""
    found = []
    inforef = ref.get(f"{directory}/inforef.xml", b"")
    for item, body in re.findall(rb"\n  <(\w+)ref>(.*?)\n  </\1ref>", inforef, re.S):
        for value in re.findall(rb"<id>(\d+)</id>", body):
            found.append((item.decode(), value.decode()))
    return found


def _course_sequence(reader: SiteReader, courseid: str,
                     listed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The course task's annotations in the order its steps make them: course
    files (course.xml), each enrolment method's role and users
    (enrolments.xml), groups, groupings and question categories, the course
    context's role assignments (roles.xml), then the rest."""
    wanted = set(listed)
    order: list[tuple[str, str]] = [p for p in listed if p[0] == "file"]
    for enrol in reader.rows("enrol", {"courseid": courseid}, order="sortorder"):
        order.append(("role", str(enrol["roleid"])))
        order += [("user", str(r["userid"])) for r in reader.rows(
            "user_enrolments", {"enrolid": enrol["id"]})]
    order += [p for p in listed if p[0] in ("group", "grouping", "question_category")]
    context = reader.one("context", {"contextlevel": 50, "instanceid": courseid})
    for ra in reader.rows("role_assignments", {"contextid": context["id"] if context else 0}):
        order += [("role", str(ra["roleid"])), ("user", str(ra["userid"]))]
    order += listed
    return [p for p in dict.fromkeys(order) if p in wanted]


def any_module_plan(run: BackupRun) -> list[Task]:
    """The course's plan with an activity task for every module, defined or
    not: the final task annotates what all of them would have."""
    original = course_plan_module.registry.activities
    course_plan_module.registry.activities = lambda: _AnyModule(original())  # type: ignore[assignment]
    try:
        return course_plan(run)
    finally:
        course_plan_module.registry.activities = original  # type: ignore[assignment]


def seed_annotations(run: BackupRun, tasks: list[Task], ref: dict[str, bytes]) -> None:
    """What the tasks before the final one annotated, from Moodle's backup:
    per task, the sequence its finish() would have recorded."""
    sequences = run.memo.setdefault("annotations", [])
    for task in tasks:
        if task.name == "final":
            continue
        ids = IdSet()
        grades = ref.get(f"{task.directory}/grades.xml", b"")
        for scale in re.findall(rb"<scaleid>(\d+)</scaleid>", grades):
            ids.add("scalefinal", scale.decode())
        listed = _inforef(ref, task.directory)
        if task.name == "course":
            listed = _course_sequence(run.reader, task.params["courseid"], listed)
        else:  # an activity's own structure annotates its files before its users
            listed = sorted(listed, key=lambda p: p[0] != "file")
        for item, value in listed:
            # inforef holds scales as insert_backup_ids_record stored them: negate back
            ids.add(item, "-" + value if item == "scale" else value)
        sequences.append(list(ids.order))
        run.final.update(ids)


def final_members(reader: SiteReader, courseid: str, ref: dict[str, bytes],
                  dataroot: str) -> tuple[dict[str, bytes | FileRef], BackupRun]:
    run = start_run(reader, courseid)
    run.dataroot = dataroot
    # Moodle's own start time: the name and filename setting then match too
    date = re.search(rb"<backup_date>(\d+)</backup_date>", ref.get("moodle_backup.xml", b""))
    if date:
        run.started = int(date.group(1))
    tasks = any_module_plan(run)
    seed_annotations(run, tasks, ref)
    final = [t for t in tasks if t.name == "final"]
    members = dict(execute(final, run, transform=transformer(run), encrypt=None))
    return members, run


def compare(ours: dict[str, bytes | FileRef], ref: dict[str, bytes]) -> Iterator[tuple[str, str]]:
    """(member, status) for every final-task member of either side."""
    names = {n for n in ref if n in FINAL_MEMBERS or n.startswith("files/")}
    names |= set(ours)
    for name in sorted(names):
        mine = ours.get(name)
        if isinstance(mine, FileRef):
            mine = Path(mine.path).read_bytes()
        theirs = ref.get(name)
        if theirs is None or mine is None:
            yield name, "extra" if theirs is None else "missing"
        elif name == "moodle_backup.xml":
            yield name, "identical" if mask(mine) == mask(theirs) else "differs"
        else:
            yield name, "identical" if mine == theirs else "differs"


def _courses() -> list[str]:
    return sorted(str(int(p.name[1:4])) for p in (SITE / "backups").glob("c*.mbz"))


@pytest.fixture(scope="module")
def site_reader() -> Iterator[SiteReader]:
    yield from postgres_reader()


@pytest.mark.parametrize("courseid", _courses() if SITE.is_dir() else [])
def test_final_members_identical(site_reader: SiteReader, courseid: str) -> None:
    dataroot = DATAROOT
    if not os.path.isdir(os.path.join(dataroot, "filedir")):
        unavailable(f"the reference site's file store is not at {dataroot}")
    ref = backup_members(courseid)
    ours, _run = final_members(site_reader, courseid, ref, dataroot)
    wrong = [(name, status) for name, status in compare(ours, ref)
             if status != "identical" and (courseid, name) not in KNOWN]
    assert wrong == []


def _main(argv: list[str]) -> int:
    courseid = argv[0]
    url = POSTGRES
    ref = backup_members(argv[1] if len(argv) > 1 and argv[1].isdigit() else courseid)
    with read_transaction(open_engine(url), "mdl_") as reader:
        ours, run = final_members(reader, courseid, ref, DATAROOT)
    for w in run.warnings:
        if "no definition" not in w:
            print("warning:", w)
    counts: dict[str, int] = {}
    for name, status in compare(ours, ref):
        counts[status] = counts.get(status, 0) + 1
        if status != "identical":
            print(f"{status:9} {name}")
            mine, theirs = ours.get(name), ref.get(name)
            if status == "differs" and "--diff" in argv and isinstance(mine, bytes) and theirs:
                diff = difflib.unified_diff(mask(theirs).decode().splitlines(),
                                            mask(mine).decode().splitlines(),
                                            "moodle", "ours", lineterm="", n=1)
                print("\n".join(list(diff)[:30]))
    print(counts)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
