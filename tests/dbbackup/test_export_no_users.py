"""``export --no-users`` and ``export --anonymize`` of a full database backup
against the database door's own narrow backups (issue 25).

Moodle decides what a backup without users holds while it writes it; a
snapshot taken with users has to reach the same archive afterwards.  The
oracle is exact: for every course of the reference site, ``backup --db``
with users, exported ``--no-users``, must give the archive ``backup --db
--no-users`` gives, and likewise for ``--anonymize`` -- member by member,
encrypted values compared by what they decrypt to.

One thing cannot be equal, and is compared as what it is: the order of
files.xml's entries (and so of files/ in .ARCHIVE_INDEX).  Moodle writes
them in the heap order of its temporary annotation table, a property of the
run, not of the course; the entries themselves must be the same.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from .clirun import Result
from .mbzcompare import Status, compare_archives, read_archive
from .refsite import RefSite

Cv = Callable[..., Result]
MODES = ("--no-users", "--anonymize")
ORDERED_BY_THE_RUN = ("files.xml", ".ARCHIVE_INDEX")


def _backup_all(cv: Cv, refsite: RefSite, *extra: str) -> dict[str, str]:
    r = cv("backup", "--db", refsite.postgres_url, "--dataroot", refsite.dataroot,
           "--all", "--json", *extra)
    assert r.code == 0, r.err
    return {o["course"]: o["snapshot"] for o in json.loads(r.out)}


def _export(cv: Cv, snapshot: str, out: Path, *extra: str) -> Path:
    r = cv("export", snapshot, "-o", out, *extra)
    assert r.code == 0, r.err
    return out


def _files_entries(data: bytes) -> list[bytes]:
    root = etree.parse(io.BytesIO(data)).getroot()
    return sorted(etree.tostring(f) for f in root.iter("file"))


def _index_entries(data: bytes) -> list[bytes]:
    """.ARCHIVE_INDEX's entries less their mtime (a value of the run)."""
    return sorted(line.rsplit(b"\t", 1)[0] for line in data.splitlines()[1:])


@pytest.fixture(scope="module")
def archives(
    tmp_path_factory: pytest.TempPathFactory, refsite: RefSite
) -> list[tuple[str, str, Path, Path]]:
    """(course, mode, exported from the full backup, exported from the
    narrow backup) for every course and mode."""
    from coursevault.cli.app import main

    work = tmp_path_factory.mktemp("nousers")
    repo = ("-r", str(work / "repo"), "--cache-dir", str(work / "cache"))

    def cv(*argv: object) -> Result:
        out = io.StringIO()
        from contextlib import redirect_stdout
        with redirect_stdout(out):
            code = main([*repo, *map(str, argv)])
        return Result(code, out.getvalue(), "")

    assert cv("init").code == 0
    full = _backup_all(cv, refsite)
    assert len(full) == len(refsite.courses) == 30
    pairs = []
    for mode in MODES:
        narrow = _backup_all(cv, refsite, mode)
        assert narrow.keys() == full.keys()
        for course, snap in sorted(full.items()):
            name = course.replace("/", "_") + mode
            ours = _export(cv, snap, work / f"{name}-from-full.mbz", mode)
            theirs = _export(cv, narrow[course], work / f"{name}-narrow.mbz")
            pairs.append((course, mode, ours, theirs))
    return pairs


def test_narrowed_exports_equal_narrow_backups(
    archives: list[tuple[str, str, Path, Path]], refsite_backup_key: bytes
) -> None:
    compared = 0
    for course, mode, ours, theirs in archives:
        comparison = compare_archives(ours, theirs, backup_key=refsite_backup_key)
        a, b = read_archive(ours), read_archive(theirs)
        for o in comparison.outcomes:
            if o.status is Status.IDENTICAL:
                continue
            if o.path == "files.xml" and o.status is Status.DIFFERS:
                assert _files_entries(a[o.path].data) == _files_entries(b[o.path].data), \
                    f"{course} {mode}: files.xml entries differ"
            elif o.path == ".ARCHIVE_INDEX" and o.status is Status.DIFFERS:
                assert _index_entries(a[o.path].data) == _index_entries(b[o.path].data), \
                    f"{course} {mode}: .ARCHIVE_INDEX"
            else:
                raise AssertionError(
                    f"{course} {mode}: {o.path} {o.status}: {o.first_difference}")
        if comparison.order_difference:
            files_first = [p for p in a if p.startswith("files/")]
            assert sorted(files_first) == sorted(p for p in b if p.startswith("files/"))
            assert [p for p in a if not p.startswith("files/")] == \
                [p for p in b if not p.startswith("files/")], f"{course} {mode}: member order"
        compared += len(comparison.outcomes)
    assert compared > 6000  # 3,506 members per mode over the 30 courses


def test_a_narrowed_export_holds_no_user_data(
    archives: list[tuple[str, str, Path, Path]],
) -> None:
    """What the narrow backup leaves out, the export does too: users.xml
    keeps no users, no member of an activity holds posts or attempts."""
    for course, mode, ours, _ in archives:
        if mode != "--no-users":
            continue
        members = read_archive(ours)
        manifest = members["moodle_backup.xml"].data
        assert b"<name>users</name>\n        <value>0</value>" in manifest, course
        if "users.xml" in members:
            assert b"<user " not in members["users.xml"].data, course
        for path, member in members.items():
            if path.endswith(("forum.xml", "quiz.xml", "assign.xml")):
                assert b"<post " not in member.data, f"{course}: {path}"
                assert b"<attempt " not in member.data, f"{course}: {path}"
                assert b"<submission " not in member.data, f"{course}: {path}"
