"""Rendering a stored XML document back to its exact bytes.

A record's fragment is a slice of the input with each run of child records
replaced by a marker (docs/format.md, "Element records"), so rendering is
concatenation: the fragment's pieces, and between them the run's records
joined by their separators.  Export, ``cat`` and diff's ``cat`` of an
element all come through here; export runs at about 70 MB/s, so the inner
loop (:func:`_render_run`) is written for records of fields only, most of
a backup.
"""

from __future__ import annotations

from collections.abc import Callable

from coursevault.snapshot.nodes import (
    MARKER,
    Getter,
    NodeFormatError,
    Record,
    decode_document,
    decode_element,
)
from coursevault.store.ids import ObjectId
from coursevault.store.treecodec import decode_tree, read_varint

FEED_SIZE = 1 << 20


class Writer:
    """Collects output pieces and hands them on in large writes."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self._buf: list[bytes] = []
        self._n = 0

    def add(self, piece: bytes) -> None:
        self._buf.append(piece)
        self._n += len(piece)
        if self._n >= FEED_SIZE:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._write(b"".join(self._buf))
            self._buf.clear()
            self._n = 0


def render_element(get: Getter, oid: ObjectId, out: Writer) -> None:
    _t, payload = get(oid)
    refs, body = decode_tree(payload)
    render_record(get, Record(refs, body, oid), out)


def render_record(get: Getter, rec: Record, out: Writer) -> None:
    node = decode_element(rec.refs, rec.body)
    if not rec.refs:
        out.add(node.fragment)
        return
    pieces = node.fragment.split(MARKER)
    if len(pieces) != len(rec.refs) + 1:
        raise ValueError(f"record: {len(pieces) - 1} markers for {len(rec.refs)} runs")
    out.add(pieces[0])
    for i, run in enumerate(rec.refs):
        _render_run(get, run, node.seps[i], out, True)
        out.add(pieces[i + 1])


def _render_run(get: Getter, oid: ObjectId, sep: bytes, out: Writer, first: bool) -> bool:
    """Render the records of a run (an R group, an L chunk, or one X) joined by
    ``sep``; return whether nothing has been written yet.

    This is export's inner loop, so an R group is parsed here, not through
    :func:`decode_group`: a leaf record (no runs, no separators -- most of a
    backup) is its fragment, sliced straight from the group without a
    :class:`Record` for it, and a group's leaves go out as one piece.
    """
    _t, payload = get(oid)
    refs, body = decode_tree(payload)
    kind = body[:1]
    if kind == b"L":
        for ref in refs:
            first = _render_run(get, ref, sep, out, first)
        return first
    if kind == b"X":
        if not first:
            out.add(sep)
        render_record(get, Record(refs, body, oid), out)
        return False
    if kind != b"R":
        raise NodeFormatError(f"{oid.hex()} is not a run of records")
    n, pos = read_varint(body, 1)
    end = len(body)
    at = 0
    pieces: list[bytes] = []
    for _ in range(n):
        # varints inline: counts below 128, lengths below 16,384 (one or two bytes)
        nrefs = body[pos] if pos < end else 0x80
        if nrefs < 0x80:
            pos += 1
        else:
            nrefs, pos = read_varint(body, pos)
        ln = body[pos] if pos + 1 < end else 0x80
        if ln < 0x80:
            pos += 1
        elif body[pos + 1] < 0x80:
            ln = (ln & 0x7F) | (body[pos + 1] << 7)
            pos += 2
        else:
            ln, pos = read_varint(body, pos)
        stop = pos + ln
        if stop > end or at + nrefs > len(refs):
            raise NodeFormatError("record group: a record runs past the group")
        if not first:
            pieces.append(sep)
        first = False
        if nrefs == 0 and body[pos : pos + 2] == b"X\x00":
            pieces.append(body[pos + 2 : stop])
        else:
            if pieces:
                out.add(b"".join(pieces))
                pieces.clear()
            render_record(get, Record(refs[at : at + nrefs], body[pos:stop]), out)
        pos = stop
        at += nrefs
    if pos != end or at != len(refs):
        raise NodeFormatError("record group: trailing bytes or references")
    if pieces:
        out.add(b"".join(pieces))
    return first


def render_document(get: Getter, oid: ObjectId, write: Callable[[bytes], object]) -> None:
    """Write a document's exact bytes through ``write`` in pieces of about 1 MiB."""
    _t, payload = get(oid)
    refs, body = decode_tree(payload)
    prologue, trailer = decode_document(body)
    out = Writer(write)
    out.add(prologue)
    render_element(get, refs[0], out)
    out.add(trailer)
    out.flush()
