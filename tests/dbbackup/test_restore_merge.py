"""``restore --into COURSE --merge``, ``--only`` and ``--start-date`` on a demo
site (SQLite: no server needed).  Issue 23: "``--only`` an activity from
last week into today's course, then back up: the course equals today's
plus that activity"; dates move with the start date, 0 staying 0."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coursevault.cli.app import main

from .clirun import Result


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo site of two S courses (ids 2 and 3), made once for the module."""
    folder = tmp_path_factory.mktemp("demo")
    code = main(["demo-site", "--db", f"sqlite:///{folder}/site.db", "--dataroot",
                 str(folder / "data"), "--size", "S", "--courses", "2"])
    assert code == 0
    return folder


@pytest.fixture
def site(demo_site: Path, tmp_path: Path) -> Iterator[tuple[str, ...]]:
    """A private copy of the demo site: (--db URL --dataroot DIR)."""
    shutil.copy(demo_site / "site.db", tmp_path / "site.db")
    shutil.copytree(demo_site / "data", tmp_path / "data")
    yield ("--db", f"sqlite:///{tmp_path}/site.db", "--dataroot", str(tmp_path / "data"))


def _sql(site: tuple[str, ...], query: str, *params: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(site[1].removeprefix("sqlite:///")) as conn:
        return list(conn.execute(query, params))


def _snapshot(cv: Callable[..., Result], site: tuple[str, ...], course: int) -> str:
    result = cv("backup", *site, "--course", str(course), "--json")
    assert result.code == 0, result.err
    return str(json.loads(result.out)[0]["snapshot"])


def _members(cv: Callable[..., Result], snapshot: str) -> set[str]:
    listing = cv("ls", snapshot, "--json")
    assert listing.code == 0, listing.err
    return {str(m["name"]) for m in json.loads(listing.out)}


def test_one_activity_into_an_existing_course(cv: Callable[..., Result],
                                              site: tuple[str, ...]) -> None:
    source = _snapshot(cv, site, 2)
    forum = next(p for p in _members(cv, source) if p.startswith("activities/forum_")
                 and p.count("/") == 1)
    before = _snapshot(cv, site, 3)
    modules = _sql(site, "SELECT COUNT(*) FROM mdl_course_modules WHERE course = 3")[0][0]
    enrolments = _sql(site, "SELECT COUNT(*) FROM mdl_user_enrolments")[0][0]
    result = cv("restore", source, *site, "--into", "3", "--merge", "--only", forum, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["courseid"] == 3 and report["activities"] == 1
    assert _sql(site, "SELECT COUNT(*) FROM mdl_course_modules WHERE course = 3")[0][0] \
        == modules + 1
    assert _sql(site, "SELECT COUNT(*) FROM mdl_user_enrolments")[0][0] == enrolments
    after = _snapshot(cv, site, 3)
    old, new = _members(cv, before), _members(cv, after)
    added = {p for p in new if p not in old}
    assert added and all(p.startswith("activities/forum_") for p in added), added
    stat = cv("diff", before, after, "--stat")
    assert stat.code == 0, stat.err
    changed = {line.split()[0] for line in stat.out.splitlines()[1:-1]}
    # today's course plus the forum: its folder, its section's sequence, the
    # manifest listing it, its files and their contents -- nothing else
    allowed = {"moodle_backup.xml", "files.xml", "files", ".ARCHIVE_INDEX"}
    others = {c for c in changed if c not in allowed and not c.startswith("activities/forum_")
              and not c.startswith("sections/")}
    assert not others, others
    posts = "SELECT COUNT(*) FROM mdl_forum_posts p JOIN mdl_forum_discussions d " \
            "ON d.id = p.discussion WHERE d.course = ?"
    assert _sql(site, posts, 3)[0][0] >= 1


def test_the_start_date_moves_every_date(cv: Callable[..., Result],
                                         site: tuple[str, ...]) -> None:
    source = _snapshot(cv, site, 2)
    start = _sql(site, "SELECT startdate FROM mdl_course WHERE id = 2")[0][0]
    week = 7 * 86400
    result = cv("restore", source, *site, "--start-date", str(int(start) + week), "--json")
    assert result.code == 0, result.err
    course = json.loads(result.out)["courseid"]
    assert _sql(site, "SELECT startdate FROM mdl_course WHERE id = ?", course)[0][0] \
        == int(start) + week
    pairs = _sql(site, "SELECT a.duedate, b.duedate, a.cutoffdate, b.cutoffdate "
                 "FROM mdl_assign a JOIN mdl_assign b ON a.name = b.name "
                 "WHERE a.course = 2 AND b.course = ?", course)
    assert pairs
    for due, moved, cutoff, moved_cutoff in pairs:
        assert moved == (int(due) + week if int(due) else 0)
        assert moved_cutoff == (int(cutoff) + week if int(cutoff) else 0)


def test_merging_a_course_twice_writes_no_duplicates(cv: Callable[..., Result],
                                                     site: tuple[str, ...]) -> None:
    source = _snapshot(cv, site, 2)
    for _ in range(2):
        result = cv("restore", source, *site, "--into", "3", "--merge")
        assert result.code == 0, result.err
    groups = _sql(site, "SELECT name, COUNT(*) FROM mdl_groups WHERE courseid = 3 "
                  "GROUP BY name HAVING COUNT(*) > 1")
    assert groups == []
    enrols = _sql(site, "SELECT enrol, COUNT(*) FROM mdl_enrol WHERE courseid = 3 "
                  "GROUP BY enrol HAVING COUNT(*) > 1")
    assert enrols == []
    top = _sql(site, "SELECT COUNT(*) FROM mdl_grade_categories WHERE courseid = 3 "
               "AND parent IS NULL")
    assert top == [(1,)]


BAD_TARGETS = [
    (("--into", "3", "--merge", "--replace"), "--merge and --replace exclude each other"),
    (("--merge",), "--merge and --replace go with --into"),
    (("--into", "3"), "--into needs --merge"),
    (("--only", "activities/nothing_1"), "the backup has no such folder"),
    (("--into", "999", "--merge"), "course 999 does not exist"),
    (("--start-date", "next week"), "is not a date"),
]


def test_bad_targets_are_one_line_and_exit_2(cv: Callable[..., Result],
                                             site: tuple[str, ...]) -> None:
    source = _snapshot(cv, site, 2)
    courses = _sql(site, "SELECT COUNT(*), MAX(id) FROM mdl_course")
    for args, message in BAD_TARGETS:
        result = cv("restore", source, *site, *args)
        assert result.code == 2, (args, result)
        assert message in result.err and len(result.err.strip().splitlines()) == 1, result.err
        assert _sql(site, "SELECT COUNT(*), MAX(id) FROM mdl_course") == courses
