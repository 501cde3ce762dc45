"""Grafting as ingest does it (tree/graft.py): candidates found by
start tag and first bytes, checked by hashes of the night before's bytes
kept in the catalog row -- never a tree other than a whole cut's."""

from __future__ import annotations

import io
from unittest import mock

from helpers import MemSink
from hypothesis import given, settings
from hypothesis import strategies as st
from test_xmltree import change, document, element

from coursevault.tree import graft, xmlmember
from coursevault.tree.xmltree import XmlChunker


def cut(sink: MemSink, data: bytes, every: int = 0, grafts: object = None) -> XmlChunker:
    chunker = XmlChunker(sink, checkpoint_every=every, grafts=grafts)  # type: ignore[arg-type]
    spool = io.BytesIO(data)
    result = xmlmember._feed(chunker, spool, 0)
    chunker.result = result  # type: ignore[attr-defined]
    return chunker


def rows(points: list[tuple[int, dict]]) -> list[list]:
    return [[offset, "", state] for offset, state in points]  # seals are resuming's


@settings(max_examples=200, deadline=None)
@given(
    doc=document(),
    before=element(),
    after=element(),
    every=st.integers(1, 200),
    pick=st.integers(0),
    damage=st.integers(-1, 40),
    inside=st.integers(-1, 1000),
)
def test_grafts_checked_by_hashes_cut_as_the_whole(
    doc: bytes, before: str, after: str, every: int, pick: int, damage: int, inside: int
) -> None:
    """Another night with new elements before an element open at a
    checkpoint and after the checkpoint -- and sometimes one inside that
    element, before the checkpoint, or a damaged hash in the row: those
    bytes must not be jumped over."""
    with (
        mock.patch.object(graft, "MIN_GRAFT", 2),
        mock.patch.object(graft, "PEEK", 2),
        mock.patch.object(graft, "PROBE", 8),
    ):
        sink = MemSink()
        old = cut(sink, doc, every)
        points = rows(old.checkpoints)
        info = graft.graft_info(io.BytesIO(doc), points, {})
        changed = change(doc, old.checkpoints, pick, before, after)
        if changed is None:
            return
        new, jump = changed
        if inside >= 0:  # one more element, after an end tag (not the root's)
            ends = [i for i in range(len(new)) if new.startswith(b"</", i)][:-1]
            if ends:
                at = new.index(b">", ends[inside % len(ends)]) + 1
                new = new[:at] + b"<new>x</new>" + new[at:]
        if 0 <= damage < len(info["digests"]) // 2:  # one segment's hash is wrong
            raw = bytearray(bytes.fromhex(info["digests"]))
            raw[damage] ^= 1
            info["digests"] = raw.hex()
        spool = io.BytesIO(new)
        grafts = graft.CheckpointGrafts(spool, len(new), points, info)
        got = cut(sink, new, every, grafts)
        whole = cut(MemSink(), new)
        assert got.result.store(sink) == whole.result.store(MemSink())  # type: ignore[attr-defined]
        if damage < 0 and inside < 0:
            assert got.grafted >= jump
