"""How much of an XML member ingest holds in memory while it cuts it."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from helpers import MINIMAL_BACKUP, read_members, tar_stream, write_tgz

from coursevault import api
from coursevault.snapshot import ingest
from coursevault.store.repository import Repository
from coursevault.store.spool import ScratchSpool

MEMBER = "activities/forum_1/forum.xml"


def _forum(posts: int) -> bytes:
    body = b"".join(
        b'\n    <post id="%d">\n      <message>%s</message>\n    </post>' % (i, b"word%d " % i * 40)
        for i in range(posts)
    )
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<activity id="1" moduleid="1"'
            b' modulename="forum" contextid="2">\n  <forum id="1">' + body
            + b"\n  </forum>\n</activity>\n")


def test_a_member_of_a_few_megabytes_is_spooled_to_disk(
    cv_repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member is copied into a spool while it is hashed, then cut from it.
    Members up to 4 MiB stayed in memory: the peak of a database backup of a
    4,000-user course, whose members are on disk already, held 5 MiB of one
    (docs/benchmarks.md 9b).  Past 1 MiB a spool is a file; the member comes
    back the same."""
    held: list[int] = []

    class Spool(ScratchSpool):
        def write(self, s: Any) -> int:
            n = super().write(s)
            if not self._rolled:  # type: ignore[attr-defined]
                held.append(self.tell())
            return n

    monkeypatch.setattr(ingest, "ScratchSpool", Spool)
    doc = _forum(7_000)
    assert len(doc) > 2 << 20
    src = tmp_path / "forum.mbz"
    write_tgz(src, [("activities/", None), ("activities/forum_1/", None), (MEMBER, doc),
                    ("moodle_backup.xml", MINIMAL_BACKUP)])
    res = api.ingest(cv_repo, str(src))
    assert held and max(held) <= 1 << 20
    out = tmp_path / "out.mbz"
    api.export(cv_repo, res.snapshot, str(out))
    assert read_members(out) == read_members(src)


def test_a_huge_archive_index_is_not_held_in_memory(cv_repo: Repository, tmp_path: Path) -> None:
    """A tgz's .ARCHIVE_INDEX is held until commit, to be compared with the
    listing the other members regenerate.  Its declared size is bounded only
    by deflate's ratio: a 1 MB archive held a 1 GB index, and ingest took
    2.1 GB.  Past MAX_HELD_INDEX it is stored as any file, in chunks, and
    comes back the same."""
    index = b"Moodle archive file index. Count: 1\n" + b"x" * (24 << 20)
    src = tmp_path / "huge-index.mbz"
    write_tgz(src, [(".ARCHIVE_INDEX", index), ("moodle_backup.xml", MINIMAL_BACKUP)])
    del index
    tracemalloc.start()
    try:
        res = api.ingest(cv_repo, str(src))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 << 20, peak
    out = tmp_path / "out.mbz"
    api.export(cv_repo, res.snapshot, str(out))
    assert tar_stream(out) == tar_stream(src)
