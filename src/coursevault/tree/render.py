"""Rendering a stored XML document back to its exact bytes.

A record's fragment is a slice of the input with each run of child records
replaced by a marker (docs/format.md, "Element records"), so rendering is
concatenation: the fragment's pieces, and between them the run's records
joined by their separators.  Export, ``cat`` and diff's ``cat`` of an
element all come through here; export runs at about 70 MB/s, so the inner
loop (:func:`_run_records`) is written for records of fields only, most of
a backup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from coursevault.store.ids import ObjectId
from coursevault.store.treecodec import decode_tree, read_varint
from coursevault.tree.nodes import (
    MARKER,
    ElementNode,
    Getter,
    NodeFormatError,
    Record,
    decode_document,
    decode_element,
)

FEED_SIZE = 1 << 20


# what a reader pulls at a time (iter_document): a restore parses as it reads
PIECE_SIZE = 64 * 1024


class Writer:
    """Collects output pieces and hands them on in large writes (of
    ``feed_size`` bytes or more)."""

    def __init__(self, write: Callable[[bytes], object], feed_size: int = FEED_SIZE) -> None:
        self._write = write
        self._buf: list[bytes] = []
        self._n = 0
        self._feed = feed_size

    def add(self, piece: bytes) -> None:
        self._buf.append(piece)
        self._n += len(piece)
        if self._n >= self._feed:
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
    """Write a record's exact bytes: its fragment with each marker replaced
    by its run's records."""
    for _ in _render_steps(get, rec, out.add, pause=False):
        pass


def _render_steps(
    get: Getter, rec: Record, add: Callable[[bytes], None], *, pause: bool
) -> Iterator[None]:
    """Write a record through ``add``; with ``pause``, yield after each run
    group, so that a reader can take what was written so far
    (:func:`iter_document`).

    Without recursion: XML may nest as deep as ingest accepts (a hand-made
    document 5,000 levels deep, far past Python's recursion limit), and
    whatever ingest accepted must come back.  The records open above the
    one being written are suspended generators on a list (one each, from
    :func:`_record_pieces`); records of fields only -- most of a backup --
    never get one: :func:`_run_records` writes them itself.
    """
    node = decode_element(rec.refs, rec.body)
    if not node.runs:
        add(node.fragment)
        return
    stack = [_record_pieces(get, node, add, pause)]
    while stack:
        for child in stack[-1]:  # a record with runs of its own: write it first
            if child is None:  # a group written: the reader's turn
                yield None
                continue
            node = decode_element(child.refs, child.body)
            if node.runs:
                stack.append(_record_pieces(get, node, add, pause))
                break
            add(node.fragment)
        else:
            stack.pop()


def _record_pieces(
    get: Getter, node: ElementNode, add: Callable[[bytes], None], pause: bool
) -> Iterator[Record | None]:
    """Write a record with runs, yielding in their place the records of its
    runs that have runs of their own (for :func:`render_record` to write)."""
    pieces = node.fragment.split(MARKER)
    if len(pieces) != len(node.runs) + 1:
        raise NodeFormatError(f"record: {len(pieces) - 1} markers for {len(node.runs)} runs")
    add(pieces[0])
    for i, run in enumerate(node.runs):
        yield from _run_records(get, run, node.seps[i], add, pause)
        add(pieces[i + 1])


def _run_records(
    get: Getter, oid: ObjectId, sep: bytes, add: Callable[[bytes], None], pause: bool
) -> Iterator[Record | None]:
    """Write the records of a run (an R group, an L chunk, or one X) joined by
    ``sep``, and yield, in their place, those that have runs of their own
    (with the separator before them written): the caller renders those;
    with ``pause``, None after each group.

    This is export's inner loop, so an R group is parsed here, not through
    :func:`decode_group`: a leaf record (no runs, no separators -- most of a
    backup) is its fragment, sliced straight from the group without a
    :class:`Record` for it, and a group's leaves go out as one piece.  List
    chunks are few levels deep (each holds up to 128), but are walked with a
    list all the same.
    """
    first = True
    todo = [oid]
    while todo:
        oid = todo.pop()
        _t, payload = get(oid)
        refs, body = decode_tree(payload)
        kind = body[:1]
        if kind == b"L":
            todo.extend(reversed(refs))
            continue
        if kind == b"X":
            if not first:
                add(sep)
            first = False
            yield Record(refs, body, oid)
            continue
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
                    add(b"".join(pieces))
                    pieces.clear()
                yield Record(refs[at : at + nrefs], body[pos:stop])
            pos = stop
            at += nrefs
        if pos != end or at != len(refs):
            raise NodeFormatError("record group: trailing bytes or references")
        if pieces:
            add(b"".join(pieces))
        if pause:
            yield None


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


def iter_document(get: Getter, oid: ObjectId, piece_size: int = PIECE_SIZE) -> Iterator[bytes]:
    """A document's exact bytes in pieces of about ``piece_size``, rendered
    as they are taken: a reader that parses as it goes holds a piece and a
    run group, not the document (an M course's assign.xml of 600
    submissions is 1 MB, its users.xml 1.5)."""
    _t, payload = get(oid)
    refs, body = decode_tree(payload)
    prologue, trailer = decode_document(body)
    ready: list[bytes] = []
    out = Writer(ready.append, piece_size)
    out.add(prologue)
    _t, payload = get(refs[0])
    root_refs, root_body = decode_tree(payload)
    for _ in _render_steps(get, Record(root_refs, root_body, refs[0]), out.add, pause=True):
        if ready:
            yield from ready
            ready.clear()
    out.add(trailer)
    out.flush()
    yield from ready
