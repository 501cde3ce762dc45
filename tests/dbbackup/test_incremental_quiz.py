"""A night's new quiz attempt or new question version is stored as the
subtrees that hold it, and nothing else (issue 22, "Incremental").

On a private copy of the reference site (PostgreSQL), the rich course --
the site's one quiz with attempts -- is backed up, backed up again with
nothing changed (a quiet night: what every night stores whatever happened),
then once more after a night written as Moodle writes it (quizchurn.py).
Every new object and element record of that last snapshot is placed in the
course's tree (treeplaces.py) and must be what a quiet night stores, or lie
inside the records that hold the change, or on the path from them up to the
root -- a path record with its own content unchanged.  Counted: the store's
own count (``backup --json``'s new_objects) is the walk's; the members a
quiet night changes cost what they cost on it; all the rest is the change
and, above it, a few objects per level of the path.  Then ``coursevault
diff`` must name the same members and records.

Nights run at 02:00 on consecutive days of the backup clock, so every
night's run-specific values (backup date and id, and the name that holds the
date) change alike, and a quiet night is the baseline of any night.
"""

from __future__ import annotations

import json
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from coursevault.api import open_repository
from coursevault.snapshot import dbbackup

from .clirun import Result
from .quizchurn import (
    add_question_version,
    add_quiz_attempt,
    quiz_question_entry,
    quiz_with_attempts,
)
from .refsite import RefSite
from .treeplaces import ARCHIVE, Increment, increment, within

COURSE = "rich"
FIRST_NIGHT = 1796868000  # 2026-12-10 02:00 UTC, after everything the site holds
DAY = 86400
INDEX = ".ARCHIVE_INDEX"  # regenerated from the others: its node holds only its size


@dataclass
class Night:
    """One backup: what it reported, and what it added to the nights before."""

    outcome: dict[str, Any]
    added: Increment
    dictionary_is_new: bool

    def member_counts(self) -> Counter[str]:
        """New objects per member (the member list and times: ARCHIVE)."""
        return Counter(_member(min(places)) for places in self.added.objects.values())


def _member(place: str) -> str:
    return place if place == ARCHIVE else place.split(":", 1)[0]


class Course:
    """The rich course on a copy of the site, backed up night after night."""

    def __init__(self, cv: Callable[..., Result], refsite: RefSite, url: str, repo: Path) -> None:
        self.cv, self.url, self.repo = cv, url, repo
        self.id = refsite.course(COURSE).pg_id
        self.dataroot = refsite.dataroot
        self.nights = 0
        self.engine = sa.create_engine(url)

    def changed_at(self) -> int:
        """An hour before the next night's backup."""
        return FIRST_NIGHT + self.nights * DAY - 3600

    def night(self, monkeypatch: pytest.MonkeyPatch) -> Night:
        at = FIRST_NIGHT + self.nights * DAY
        self.nights += 1
        # the backup's clock (its date, and the name that holds it) reads
        # 02:00 of this night; its run still takes the seconds it takes
        offset = at - time.time()
        clock = types.SimpleNamespace(time=lambda: time.time() + offset)
        monkeypatch.setattr(dbbackup, "time", clock)
        r = self.cv(
            "backup", "--db", self.url, "--dataroot", self.dataroot, "--course", self.id, "--json"
        )
        assert r.code == 0, r.err
        [outcome] = json.loads(r.out)
        with open_repository(str(self.repo)) as repo:
            snaps = repo.snapshots(outcome["course"])
            added = increment(repo.get, [bytes.fromhex(s.root) for s in snaps])
        dictionaries = [s.record.get("dictionary") for s in snaps]
        return Night(outcome, added, dictionaries[-1] not in dictionaries[:-1])

    def diff(self, key: str) -> dict[str, Any]:
        r = self.cv("diff", "--json", f"{key}@~1", f"{key}@latest")
        assert r.code == 0, r.err
        result: dict[str, Any] = json.loads(r.out)
        return result


@pytest.fixture
def course(
    cv: Callable[..., Result], refsite: RefSite, refsite_copy: str, tmp_path: Path
) -> Iterator[Course]:
    """The course on a private copy (tmp_path/repo is the ``cv`` repository)."""
    c = Course(cv, refsite, refsite_copy, tmp_path / "repo")
    yield c
    c.engine.dispose()


def _misplaced(change: Increment, quiet: Increment, subtrees: set[str]) -> list[str]:
    """New objects and records of the change night that are neither at a
    place a quiet night stores them at, nor in ``subtrees``, nor above them;
    a record above them must keep its own content (only its children moved)."""

    def inside(place: str) -> bool:
        return any(within(place, s) for s in subtrees)

    def above(place: str) -> bool:
        return any(within(s, place) and s != place for s in subtrees)

    quiet_objects = quiet.object_places() | {ARCHIVE, INDEX}
    out = [
        f"object {oid.hex()[:12]} at {p}"
        for oid, places in change.objects.items()
        for p in places
        if not (p in quiet_objects or inside(p) or above(p))
    ]
    quiet_records = quiet.record_places()
    for oid, places in change.records.items():
        for p in places:
            if p in quiet_records or inside(p):
                continue
            if not above(p):
                out.append(f"record {oid.hex()[:12]} at {p}")
            elif change.fragments[oid] not in change.fragments_before.get(p, set()):
                out.append(f"record {oid.hex()[:12]} at {p}: its own content changed")
    return out


def _check_counts(quiet: Night, change: Night, subtrees: set[str]) -> tuple[int, int]:
    """The store's counts are the walk's.  Beyond what a quiet night stores,
    a change night stores the change (objects inside ``subtrees``) and the
    path above it in the members holding it, a few objects a level whatever
    the course's size.  Returns (inside, on the path)."""
    for night in (quiet, change):
        walked = len(night.added.objects) + night.dictionary_is_new
        assert night.outcome["new_objects"] == walked, night.outcome
    q, c = quiet.member_counts(), change.member_counts()
    run_specific = set(q) - {ARCHIVE}
    assert run_specific <= {"moodle_backup.xml"} | {m for m in q if m.endswith("/lti.xml")}
    holders = {_member(s) for s in subtrees}
    # .ARCHIVE_INDEX's node holds its own size, which grows only when a
    # member's size gains a digit
    assert set(c) - set(q) - {INDEX} == holders
    # the run-specific values cost what they cost on a quiet night, give or
    # take a record group each: group boundaries hang on the records' ids
    for m in run_specific:
        assert abs(c[m] - q[m]) <= len(quiet.added.records), (m, c[m], q[m])
    # a changed member rewrites its chunk of the member list and the chunks
    # above it (three levels for this course's 493 members)
    assert c[ARCHIVE] <= q[ARCHIVE] + 3 * (len(holders) + 1)
    inside = path = 0
    path_places: set[str] = set()
    for places in change.added.objects.values():
        if all(any(within(p, s) for s in subtrees) for p in places):
            inside += 1
        elif {_member(p) for p in places} <= holders:
            path += 1
            path_places |= places
    assert sum(c[m] for m in holders) == inside + path
    # each place on the path: the member's node, document node and length,
    # or a record group and the list chunks above it
    assert path <= 3 * len(path_places), sorted(path_places)
    return inside, path


def _quiet_diff_records(diff: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(r["change"], r["member"], r["path"]) for r in diff["records"]}


def test_a_new_quiz_attempt_stores_only_its_subtrees(
    course: Course, monkeypatch: pytest.MonkeyPatch
) -> None:
    course.night(monkeypatch)
    quiet = course.night(monkeypatch)
    key = quiet.outcome["course"]
    quiet_diff = course.diff(key)
    with course.engine.begin() as conn:
        quiz, cm, student = quiz_with_attempts(conn, course.id)
        new = add_quiz_attempt(conn, quiz, student, course.changed_at())
    change = course.night(monkeypatch)

    assert new.completion_id is not None  # the quiz completes once graded
    folder = f"activities/quiz_{cm}"
    quiz_xml = f"{folder}/quiz.xml:/activity[@id={quiz}]/quiz[@id={quiz}]"
    grades = _grade_places(course, new.grade_grade_id, *new.total_grade_ids)
    added = {
        f"{quiz_xml}/attempts/attempt[@id={new.attempt_id}]",
        f"{quiz_xml}/grades/grade[@id={new.quiz_grade_id}]",
        f"{folder}/completion.xml:/completions/completion[@id={new.completion_id}]",
    }
    misplaced = _misplaced(change.added, quiet.added, added | set(grades))
    assert not misplaced, misplaced
    inside, _on_path = _check_counts(quiet, change, added | set(grades))
    assert inside > 0

    diff = course.diff(key)
    holders = {f"{folder}/{m}" for m in ("quiz.xml", "grades.xml", "completion.xml")}
    assert _members(diff) == holders | {"gradebook.xml"} | _members(quiet_diff)
    records = _quiet_diff_records(diff) - _quiet_diff_records(quiet_diff)
    assert records == {("added", *_split(p)) for p in added} | {
        ("modified", *_split(p)) for p in grades
    }


def _split(place: str) -> tuple[str, str]:
    member, path = place.split(":", 1)
    return member, path


def _members(diff: dict[str, Any]) -> set[str]:
    return {m["path"] for m in diff["members"]}


def _grade_places(course: Course, *grade_ids: int) -> list[str]:
    """Where each grade_grades row sits in the backup: its activity's
    grades.xml (a module's item) or gradebook.xml (course, category, manual)."""
    places = []
    with course.engine.connect() as conn:
        for gid in grade_ids:
            item, itemtype, module, instance = conn.execute(
                sa.text(
                    "SELECT gi.id, gi.itemtype, gi.itemmodule, gi.iteminstance FROM mdl_grade_grades g"
                    " JOIN mdl_grade_items gi ON gi.id = g.itemid WHERE g.id = :g"
                ),
                {"g": gid},
            ).one()
            tail = f"grade_item[@id={item}]/grade_grades/grade_grade[@id={gid}]"
            if itemtype == "mod":
                cm = conn.execute(
                    sa.text(
                        "SELECT cm.id FROM mdl_course_modules cm JOIN mdl_modules m ON m.id = cm.module"
                        " WHERE m.name = :m AND cm.instance = :i"
                    ),
                    {"m": module, "i": instance},
                ).scalar_one()
                places.append(
                    f"activities/{module}_{cm}/grades.xml:/activity_gradebook/grade_items/{tail}"
                )
            else:
                places.append(f"gradebook.xml:/gradebook/grade_items/{tail}")
    return places


def test_a_new_question_version_stores_only_its_subtree(
    course: Course, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A teacher edits a question the quiz uses: questions.xml takes the
    entry's new version, and nothing else changes -- not even quiz.xml, as
    the quiz refers to the entry ("always the latest version"), which Moodle
    writes as the entry's id and an empty version."""
    course.night(monkeypatch)
    quiet = course.night(monkeypatch)
    key = quiet.outcome["course"]
    quiet_diff = course.diff(key)
    with course.engine.begin() as conn:
        entry, category, teacher = quiz_question_entry(conn, course.id)
        new = add_question_version(conn, entry, teacher, course.changed_at())
    change = course.night(monkeypatch)

    entry_place = (
        "questions.xml:/question_categories"
        f"/question_category[@id={category}]/question_bank_entries"
        f"/question_bank_entry[@id={entry}]"
    )
    version_place = f"{entry_place}/question_version/question_versions[@id={new.version_id}]"
    misplaced = _misplaced(change.added, quiet.added, {version_place})
    assert not misplaced, misplaced
    inside, _path_objects = _check_counts(quiet, change, {version_place})
    assert inside > 0

    diff = course.diff(key)
    assert _members(diff) == {"questions.xml"} | _members(quiet_diff)
    records = _quiet_diff_records(diff) - _quiet_diff_records(quiet_diff)
    assert records == {("added", *_split(version_place))}
