"""The archive source names its snapshot before its members (snapshot/source.py):
wherever moodle_backup.xml lies in a tgz or zip, the head is read first and
the members then stream in archive order, all of them."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from helpers import MINIMAL_BACKUP, write_tgz

from coursevault.errors import ArchiveError
from coursevault.snapshot.source import ArchiveSource

MEMBERS: list[tuple[str, bytes | None]] = [
    ("files/", None),
    ("files/ab/", None),
    ("files/ab/big", os.urandom(300_000)),
    ("course.xml", b"<course/>"),
    ("moodle_backup.xml", MINIMAL_BACKUP),
    ("users.xml", b"<users/>"),
]


def _zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in MEMBERS:
            if data is not None:
                zf.writestr(name, data)


@pytest.mark.parametrize("fmt", ["tgz", "zip"])
def test_the_head_comes_first_and_every_member_after_it(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"late.{fmt}"
    if fmt == "tgz":
        write_tgz(path, MEMBERS)
    else:
        _zip(path)
    source = ArchiveSource(str(path))
    assert (source.head.key, source.head.epoch) == ("abc-7", 1700000000.0)
    assert source.head.fields["file"] == f"late.{fmt}"
    assert source.head.fields["format"] == fmt
    assert source.head.fields["original_course_id"] == "7"
    read = {m.path: s.read() for m, s in source.members() if not m.is_dir}
    assert read == {n: d for n, d in MEMBERS if d is not None}


def test_the_caller_may_name_course_and_time(tmp_path: Path) -> None:
    path = tmp_path / "a.mbz"
    write_tgz(path, MEMBERS)
    head = ArchiveSource(str(path), course="x", when="2030-01-01T00:00").head
    assert (head.key, head.epoch) == ("x", 1893456000.0)


def test_an_archive_without_a_manifest_is_refused_before_its_members(tmp_path: Path) -> None:
    path = tmp_path / "none.mbz"
    write_tgz(path, [m for m in MEMBERS if m[0] != "moodle_backup.xml"])
    with pytest.raises(ArchiveError, match=r"no moodle_backup\.xml: not a Moodle backup"):
        ArchiveSource(str(path))
