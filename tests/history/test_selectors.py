"""Snapshot selectors: an id or its prefix, COURSE, COURSE@latest, @~N, @<time>."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from coursevault.cli.app import main
from coursevault.errors import SelectorError
from coursevault.history.selectors import resolve
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.repository import Repository

DAY = 86400
T0 = 1700000000  # 2023-11-14T22:13:20Z


@pytest.fixture
def three_nights(
    cv_repo: Repository, tmp_path: Path, write_course: Callable[..., Path]
) -> list[str]:
    out = []
    for night in range(3):
        posts = {1: [(10 + i, f"post {i}") for i in range(night + 1)]}
        path = write_course(tmp_path / f"n{night}.mbz", posts, date=T0 + night * DAY)
        out.append(ingest_archive(cv_repo, str(path), course="c").snapshot)
    return out


def test_every_form_names_the_snapshot(
    cv_repo: Repository, three_nights: list[str], write_course: Callable[..., Path]
) -> None:
    first, second, third = three_nights
    for selector, want in [
        (first, first),
        (second[:8], second),
        (third[:12].upper(), third),
        ("c", third),
        ("c@latest", third),
        ("c@~0", third),
        ("c@~2", first),
        ("c@2023-11-15T22:13:20Z", second),  # exactly the second backup's time
        ("c@2023-11-15T22:13:19Z", first),  # a second before it
        ("c@2023-11-17T00:13:20+02:00", third),  # the third's time, in another zone
        ("c@2030-01-01", third),
    ]:
        assert resolve(cv_repo, selector).id == want, selector


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("", "empty snapshot selector"),
        ("c@~3", "has 3 snapshots; 'c@~3' goes back too far"),
        ("c@~x", "~N needs a number"),
        ("c@~-1", "~N counts nights back, from 0"),
        ("c@2023-11-14", "no snapshot at or before 2023-11-14"),
        ("c@yesterday", "expected latest, ~N or an ISO time"),
        ("c@1969-01-01", "is out of range: 1970-01-01 to 9999-12-31"),
        ("nope@latest", "no snapshot matches 'nope@latest'"),
        ("abc", "an id prefix needs 4 hex digits or more"),
    ],
)
def test_a_selector_that_names_nothing_says_why(
    cv_repo: Repository, three_nights: list[str], selector: str, message: str
) -> None:
    with pytest.raises(SelectorError, match=message.replace("~", "\\~")):
        resolve(cv_repo, selector)


def test_an_ambiguous_prefix_is_refused(cv_repo: Repository, three_nights: list[str]) -> None:
    rows = cv_repo.snapshots()
    # two snapshots whose ids share their first 8 digits (a 1 in 4 billion chance
    # among real ids, so the rows are made)
    twins = [
        replace(rows[0], id="abcd1234" + rows[0].id[8:], series="t"),
        replace(rows[1], id="abcd1234" + rows[1].id[8:], series="t"),
    ]
    for twin in twins:
        cv_repo.catalog.add_snapshot(twin)
    with pytest.raises(SelectorError, match="'abcd' is ambiguous"):
        resolve(cv_repo, "abcd")
    assert resolve(cv_repo, twins[1].id[:12]).id == twins[1].id


def test_a_course_key_that_is_also_an_id_prefix_is_refused(
    cv_repo: Repository, three_nights: list[str], tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    """``export KEY`` wrote another course's snapshot when KEY, all hex
    digits, began that snapshot's id."""
    key = three_nights[0][:8]
    path = write_course(tmp_path / "other.mbz", {1: [(10, "other")]}, date=T0)
    theirs = ingest_archive(cv_repo, str(path), course=key).snapshot
    with pytest.raises(SelectorError, match="is both a course and the start of snapshot"):
        resolve(cv_repo, key)
    assert resolve(cv_repo, f"{key}@latest").id == theirs
    assert resolve(cv_repo, three_nights[0][:12]).id == three_nights[0]


def test_the_cli_takes_selectors_and_exits_2_on_a_bad_one(
    cv_repo: Repository,
    three_nights: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["-r", str(tmp_path / "repo"), "--cache-dir", str(tmp_path / "cache")]
    assert main(["ls", "c@~1", *args]) == 0
    assert "activities/forum_5/forum.xml" in capsys.readouterr().out
    assert main(["ls", "c@~9", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "goes back too far" in err


def test_forget_resolves_every_selector_before_deleting_any(
    cv_repo: Repository,
    three_nights: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``c@~1`` names the second night when the command starts; resolved after
    ``c@latest`` was gone it would name the first, and forget would delete a
    snapshot the user did not name."""
    first, second, third = three_nights
    args = ["-r", str(tmp_path / "repo"), "--cache-dir", str(tmp_path / "cache")]
    assert main(["forget", "--snapshot", "c@latest", "--snapshot", "c@~1", "--dry-run", *args]) == 0
    capsys.readouterr()
    assert [s.id for s in cv_repo.snapshots()] and first in {s.id for s in cv_repo.snapshots()}
    assert main(["forget", "--snapshot", "c@latest", "--snapshot", "c@~1", *args]) == 0
    assert [s.id for s in cv_repo.snapshots("c")] == [first]
    # one selector that names nothing: nothing at all is deleted
    assert main(["forget", "--snapshot", "c@latest", "--snapshot", "c@~5", *args]) == 2
    assert [s.id for s in cv_repo.snapshots("c")] == [first]
    del second, third


def test_the_latest_of_one_time_stays_the_last_ingested_when_one_between_is_forgotten(
    cv_repo: Repository, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    """Three backups of one course at one time (a night ingested again, or
    two database backups within a second), the middle one forgotten: the
    chain of parents between the other two is broken.  The id alone then
    decided, and ``@latest`` -- and ``forget --keep-last 1`` -- took the
    first backup for the last about half the time; the record's ``tie``
    (the order snapshots of one time were committed in) decides.  Eight courses, so that some of them have
    ids in the order that misled."""
    from coursevault.history.retention import Policy, apply_policy

    for course in range(8):
        key = f"c{course}"
        made = []
        for n in range(3):
            posts = {1: [(10 + i, f"course {course} post {i}") for i in range(n + 1)]}
            path = write_course(tmp_path / f"{key}-{n}.mbz", posts, date=T0)
            made.append(ingest_archive(cv_repo, str(path), course=key).snapshot)
        cv_repo.delete_snapshot(made[1])
        assert resolve(cv_repo, f"{key}@latest").id == made[2], key
        assert resolve(cv_repo, f"{key}@~1").id == made[0], key
        kept = [s.id for s, _why in apply_policy(cv_repo.snapshots(key), Policy(last=1)).keep]
        assert kept == [made[2]], key


def test_a_time_as_printed_takes_in_its_whole_second(
    cv_repo: Repository, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    """A snapshot taken at 22:13:20.6 (database backups before whole-second
    times) is printed 22:13:20, and that time selected nothing."""
    path = write_course(tmp_path / "n.mbz", {1: [(10, "post")]}, date=T0)
    snap = ingest_archive(cv_repo, str(path), course="c", when="2023-11-14T22:13:20.6Z").snapshot
    assert resolve(cv_repo, "c@2023-11-14T22:13:20Z").id == snap
    with pytest.raises(SelectorError):
        resolve(cv_repo, "c@2023-11-14T22:13:20.5Z")  # a fraction given is taken as given
    with pytest.raises(SelectorError):
        resolve(cv_repo, "c@2023-11-14T22:13:19Z")
