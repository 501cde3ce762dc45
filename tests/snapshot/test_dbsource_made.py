"""A database backup holds nothing per member while it stores them: the
list of members made waits on disk (snapshot/dbsource.py), where it held
about 460 bytes a member -- 6 MB for a course of 13,000 members -- from the
last member made to the last one stored."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from coursevault.snapshot import dbsource
from coursevault.snapshot.dbsource import DatabaseSource
from coursevault.structure.plan import Spooled


class _Run:
    def release(self) -> None:
        pass


def _held_when_storing(members: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Bytes traced when the first member after the index is handed on,
    over those traced as making began; every member's bytes checked."""

    def made(_run: Any, _progress: Any, spool: Any) -> Iterator[tuple[str, Spooled]]:
        at = 0
        for i in range(members):
            data = f"<member n='{i}'/>".encode()
            spool.seek(at)
            spool.write(data)
            yield f"activities/page_1/m{i:05d}.xml", Spooled(at, len(data))
            at += len(data)

    monkeypatch.setattr(dbsource, "course_members", made)
    source = object.__new__(DatabaseSource)  # its run's site and course are not needed here
    source.run, source._progress, source._mtime = _Run(), None, 1700000000  # type: ignore[assignment]
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        held = -1
        seen = 0
        for n, (member, stream) in enumerate(source.members()):
            if n == 1:
                held = tracemalloc.get_traced_memory()[0] - start
            if member.name.endswith(".xml"):
                assert stream.read() == f"<member n='{seen}'/>".encode()
                seen += 1
        assert seen == members
        return held
    finally:
        tracemalloc.stop()


def test_making_more_members_holds_no_more_while_storing(monkeypatch: pytest.MonkeyPatch) -> None:
    few = _held_when_storing(500, monkeypatch)
    many = _held_when_storing(4500, monkeypatch)
    # 4,000 members more: 460 bytes each were 1.8 MB held
    assert many - few < 4000 * 50, (few, many)
