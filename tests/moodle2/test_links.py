"""Links in a tgz.  Moodle never writes them, but a backup re-packed with GNU
tar may hold a hard link to a member already in the archive (the corpus's
STACK-syntax-quiz.mbz links its .ARCHIVE_INDEX to itself).  Such a link is
kept and written back exactly; Moodle's restore skips it.  Any other link --
symbolic, or hard to something not before it -- is refused (the bad-input
suite, test_bad_input.py, covers those)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from helpers import MINIMAL_BACKUP, read_members, tar_stream, tar_with
from refusals import assert_refused

from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.repository import Repository

FILE = b"a file's bytes\n" * 10


def _entry(
    name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = ""
) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.linkname, ti.mtime = kind, size, link, 1700000000
    return ti


def test_a_hard_link_to_an_earlier_member_comes_back_exactly(
    cv_repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "linked.mbz"
    tar_with(
        src,
        [
            _entry("moodle_backup.xml", size=len(MINIMAL_BACKUP)),
            _entry("files/a.txt", size=len(FILE)),
            _entry("files/b.txt", tarfile.LNKTYPE, link="files/a.txt"),
        ],
        {"moodle_backup.xml": MINIMAL_BACKUP, "files/a.txt": FILE},
    )
    snap = ingest_archive(cv_repo, str(src)).snapshot
    out = tmp_path / "out.mbz"
    export_snapshot(cv_repo, snap, str(out))
    assert tar_stream(out) == tar_stream(src)  # the link's header too, byte for byte
    with tarfile.open(out) as tf:
        link = tf.getmember("files/b.txt")
        assert link.islnk() and link.linkname == "files/a.txt"

    # a zip has no links: converted, the archive holds what Moodle restores
    as_zip = tmp_path / "out.zip"
    export_snapshot(cv_repo, snap, str(as_zip), fmt="zip")
    assert [name for name, _d, _b in read_members(as_zip)] == ["moodle_backup.xml", "files/a.txt"]


def duplicate_through_a_link(p: Path) -> None:
    tar_with(
        p,
        [
            _entry("moodle_backup.xml", size=len(MINIMAL_BACKUP)),
            _entry("copy.xml", tarfile.LNKTYPE, link="moodle_backup.xml"),
            _entry("copy.xml", size=3),
        ],
        {"moodle_backup.xml": MINIMAL_BACKUP, "copy.xml": b"abc"},
    )


def test_a_member_named_as_an_earlier_link_is_a_duplicate(
    seeded_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two entries of one name: which one a restore takes depends on the tool."""
    duplicate_through_a_link(Path("dup.mbz"))
    assert_refused(seeded_repo, "dup.mbz", capsys, "duplicate member name", "copy.xml")
