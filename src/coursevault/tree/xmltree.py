"""Cutting: streaming an XML document into element records.

Ingest scans the member's bytes for tags itself (xmltags.py: ``bytes.find``
and regular expressions do the work, so it runs at C speed) while libxml2
checks, on the same bytes, that the document is well-formed and has no DTD
(xmlcheck.py).  Rendering the records back is render.py's; the state a cut
is resumed or grafted from, cutstate.py's and graft.py's.  Whenever an element that contains
other elements ends, it becomes a *record*: its exact input bytes, in which
every run of child records is replaced by the marker ``<_cvlist/>``, are
stored as one ``X`` node.  Because fragments are slices of the input, never a
re-serialisation, rendering the stored tree gives back the input byte for
byte -- whatever formatting, comments, CDATA or character references a hand
edit left -- and nothing needs re-verifying after the fact.

Memory stays flat however long the file (Moodle 1.9 needed 311 MB for a 12.5
MB file): the scanner keeps only the path from the root to the current
element, each with the bytes of its own that are not yet cut out, and the
leaf fields of the record being read.  Consecutive sibling records with the
same text between them become one run, grouped and chunked by :class:`RecordListBuilder`.

Documents the scanner cannot cut exactly (not in an ASCII-compatible
encoding, element names with namespace prefixes, text that looks like the run
marker) raise :class:`NotCanonical`; the caller keeps their raw bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from coursevault.store.ids import ObjectId, ObjectType, id_hasher, object_id
from coursevault.store.treecodec import encode_tree
from coursevault.tree.cutstate import Checkpoint, OpenElement, Run
from coursevault.tree.graft import GraftSource, fit_graft
from coursevault.tree.listbuilder import RecordListBuilder
from coursevault.tree.nodes import (
    MARKER,
    MARKER_TAG,
    encode_document,
    encode_element,
    encode_length,
)
from coursevault.tree.sink import ObjectSink
from coursevault.tree.xmlcheck import Validator, XmlSyntax
from coursevault.tree.xmltags import (
    LEAVES,
    MAX_PROLOGUE,
    RECORD,
    NotCanonical,
    markup_end,
    quoted_tag_end,
)

MARKER_TAG_B = MARKER_TAG.encode()
_LEAF_PREFIX = encode_element([], b"")  # b"X" + varint 0
# object_id(TREE, encode_tree([], _LEAF_PREFIX + fragment)), hashed without building it
_leaf_hasher = id_hasher(ObjectType.TREE, encode_tree([], _LEAF_PREFIX))
# Elements open at once that a document may have and still be cut into
# records: past that it is kept raw (exact all the same).  Moodle nests a
# dozen levels; the scanner holds about 0.5 kB for each open element, so a
# few MB of hand-made nesting would otherwise take gigabytes.  (libxml2, fed
# through a parser target, checks no depth at all: lxml 6.0, libxml2 2.14,
# took 3 million levels; a build that does refuse makes ingest refuse.)
MAX_DEPTH = 10_000
# Checkpoints (XmlChunker.checkpoint) are taken only where at most this many
# elements are open: a state holds every open element, and a member keeps
# up to 32 of them until its session commits.
MAX_POINT_DEPTH = 256
# ...and where the open elements hold at most this many bytes not yet cut
# (the state keeps them): a real member's records are a few kB
MAX_CHECKPOINT_BUFFER = 1 << 20


# an XML declaration's encoding, and the names under which it is UTF-8
_DECLARED = re.compile(
    rb"""(?:\xef\xbb\xbf)?<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._-]+)["']"""
)
_UTF8 = {b"utf-8", b"utf8", b"us-ascii", b"ascii"}


@dataclass
class ChunkResult:
    """A chunked document whose ``D`` node is not stored yet (see :meth:`store`)."""

    root: ObjectId
    body: bytes  # the D node's body (prologue, trailer)
    records: int
    elements: int
    size: int

    def store(self, sink: ObjectSink) -> ObjectId:
        """Store the ``D`` node, naming the document's length (nodes.document_length)."""
        length = sink.put(ObjectType.BLOB, encode_length(self.size))
        return sink.put_tree([self.root, length], self.body)


class XmlChunker:
    """Feed bytes in order with :meth:`feed`, then :meth:`close` for the result.

    :class:`XmlSyntax` is raised as soon as the bytes are malformed.  Once the
    document turns out not to be cuttable, scanning stops but validation goes
    on, and :meth:`close` raises :class:`NotCanonical` with the reason.
    """

    def __init__(
        self,
        sink: ObjectSink,
        *,
        checkpoint_every: int = 0,
        grafts: GraftSource | None = None,
    ) -> None:
        self._sink = sink
        self._valid = Validator()
        # where an element opened tonight may jump to (see :meth:`_graft`)
        self._grafts = grafts
        self._jumped = False  # set by _graft, for _run to take up
        self.grafted = 0  # bytes jumped over
        # every ``checkpoint_every`` bytes, the state at the next end tag (see
        # :meth:`checkpoint`): (offset, state) pairs, for the next night
        self.checkpoints: list[tuple[int, dict[str, Any]]] = []
        self._every = checkpoint_every
        self._next_point = checkpoint_every if checkpoint_every > 0 else -1
        self._buf = b""  # input from offset ``_base`` on, not yet cut away
        self._base = 0
        self._scan = 0  # absolute offset where scanning resumes
        self._stack: list[OpenElement] = []
        self._prologue: bytes | None = None
        self._root: ObjectId | None = None
        self._trailer_from = -1
        self._size = 0
        self._failed: str | None = None
        self.records = 0
        self.elements = 0

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._valid.feed(data)
        if self._size == 0 and (data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\0" in data[:4]):
            self._failed = "not in an ASCII-compatible encoding (UTF-16?)"
        elif self._size == 0:
            declared = _DECLARED.match(data)
            if declared and declared.group(1).lower() not in _UTF8:
                # records are read back as UTF-8 (ls, log, diff, export's
                # rewrites): a Latin-1 document is kept whole, as UTF-16 is
                self._failed = f"declared in {declared.group(1).decode(errors='replace')}"
        self._size += len(data)
        if self._failed is not None:
            return
        self._buf += data
        try:
            self._run()
        except NotCanonical as exc:
            self._failed = str(exc)
            self._buf = b""
            self._stack.clear()

    def close(self) -> ChunkResult:
        if not self._size:
            raise XmlSyntax("empty XML file")
        self._valid.feed(b"", True)
        if self._failed is not None:
            raise NotCanonical(self._failed)
        if (
            self._root is None
            or self._prologue is None
            or self._stack
            or self._scan < self._base + len(self._buf)
        ):
            # libxml2 accepted the whole document, so the scanner lost its way: keep it raw
            raise NotCanonical(f"the chunker could not follow the markup at byte {self._scan}")
        trailer = self._buf[self._trailer_from - self._base :]
        body = encode_document(self._prologue, trailer)
        return ChunkResult(self._root, body, self.records, self.elements, self._size)

    # -- resuming --------------------------------------------------------------------
    def checkpoint(self, offset: int) -> dict[str, Any]:
        """The scanner's state just after an end tag ending at ``offset``, as
        JSON-able data: what a chunker fed the same first ``offset`` bytes
        would hold there, so :meth:`resume` can go on from it.

        Why: a big member (a 22 MB forum.xml) changes every night, but mostly
        at its end, where new posts and log lines land; a night whose first
        megabytes are the same as the night before's resumes from the state
        there instead of cutting them again (xmlmember.py).  The state
        is small: the open elements (their bytes not yet cut, runs, counters)
        and each run's open group and list chunks (ids).
        """
        keep = self._keep(offset)
        return Checkpoint(
            keep,
            self._buf[keep - self._base : offset - self._base],
            self._prologue or b"",
            self.records,
            self.elements,
            self._stack,
        ).dump()

    @classmethod
    def resume(
        cls,
        sink: ObjectSink,
        offset: int,
        state: dict[str, Any],
        *,
        lines: int,
        checkpoint_every: int = 0,
        grafts: GraftSource | None = None,
    ) -> XmlChunker:
        """A chunker in the state :meth:`checkpoint` gave at ``offset``; feed it
        the document's bytes from ``offset`` on.  ``lines`` is the number of
        line breaks before ``offset``: libxml2 is given the prologue, the open
        elements' start tags and that many line breaks in place of the bytes
        it already checked, so it goes on checking from the same element (and
        counts lines right in its messages).  A state that does not fit
        raises ValueError (or KeyError, TypeError)."""
        c = cls(sink, checkpoint_every=checkpoint_every, grafts=grafts)
        if checkpoint_every > 0:
            c._next_point = offset + checkpoint_every
        point = Checkpoint.load(sink, offset, state)
        c._prologue, c._base, c._buf = point.prologue, point.keep, point.buf
        c._scan = c._size = offset
        c.records, c.elements = point.records, point.elements
        c._stack.extend(point.stack)
        c._restart_validator(lines)
        return c

    def _restart_validator(self, lines: int) -> None:
        """A new libxml2 parser that goes on from the open elements, with
        ``lines`` line breaks before where the input goes on (see :meth:`resume`)."""
        assert self._prologue is not None
        self._valid = Validator.resumed(self._prologue, [el.name for el in self._stack], lines)

    # -- grafting (graft.py) ----------------------------------------------------------
    def _graft(self, tag: bytes, el: OpenElement) -> None:
        """Jump from ``el``, which just opened, to a checkpoint an earlier cut
        took inside an element with the same start tag and the same bytes
        since, if the graft source knows one and its state fits (graft.py
        says why that is exact): take that state in place of this one's
        from ``el`` down, and go on past the checkpoint."""
        assert self._grafts is not None
        fed = self._base + len(self._buf)
        g = self._grafts.find(tag, el.start, fed)
        fit = None if g is None else fit_graft(self._sink, g, el)
        if fit is None:
            return
        stack = self._stack
        self._first_child(el)  # tonight's gap and parent cursor
        frames = fit.frames
        frames[0].gap = el.gap
        stack[-1] = frames[0]
        stack.extend(frames[1:])
        self.records += fit.records
        self.elements += fit.elements
        offset = fit.offset
        if offset <= fed:  # libxml2 has checked up to ``fed`` already
            self._buf = self._buf[fit.keep - self._base :]
        else:  # those bytes are the earlier night's (the source checked)
            self._buf = fit.old
            self._size = offset
            self._restart_validator(fit.lines)
        self._base = fit.keep
        self._scan = offset
        self.grafted += offset - el.start
        if fit.every > 0:
            self._every = fit.every
        if self._every > 0:
            # the state there is a checkpoint of tonight's: tomorrow's cut can
            # graft to it again, whatever follows
            self._point(offset)
        self._jumped = True

    @property
    def next_offset(self) -> int:
        """The offset of the next byte to feed (past a jump: see :meth:`_graft`)."""
        return self._size

    # -- the scanner -----------------------------------------------------------------
    def _run(self) -> None:
        while self._scan_once():  # it jumped (see _graft): go on from there
            self._jumped = False
            self._trim()

    def _scan_once(self) -> bool:
        buf, base, stack = self._buf, self._base, self._stack
        find = buf.find
        leaves = LEAVES.match
        record = RECORD.match
        pos = self._scan - base
        end_of_data = len(buf)
        # the next checkpoint, relative to ``buf`` (past its end when none is due)
        point = self._next_point - base if self._next_point >= 0 else end_of_data + 1
        while True:
            if stack:
                # Most elements are fields: take a whole stretch of them in one C call.
                m = leaves(buf, pos)
                if m is not None:
                    n = buf.count(b"</", pos, m.end())
                    self.elements += n
                    parent = stack[-1]
                    parent.nchild += n
                    if parent.pieces is None:
                        self._first_child(parent)
                    pos = m.end()
            lt = find(b"<", pos)
            if lt < 0:
                pos = end_of_data
                break
            if lt + 1 >= end_of_data:
                pos = lt
                break
            c = buf[lt + 1]
            if c == 0x2F:  # '/': end tag
                gt = find(b">", lt)
                if gt < 0:
                    pos = lt
                    break
                self._end(gt + 1 + base, buf[lt + 2 : gt].rstrip())
                pos = gt + 1
                if pos >= point and 0 < len(stack) <= MAX_POINT_DEPTH:
                    point = self._point(pos + base) - base
                continue
            if c == 0x21 or c == 0x3F:  # '!' comment, CDATA, doctype; '?' PI
                stop = markup_end(buf, lt)
                if stop < 0:
                    pos = lt
                    break
                pos = stop
                continue
            if stack:
                m = record(buf, lt)
                if m is not None:
                    fields, stop = m.span(3)
                    if fields < stop:
                        if m.start(5) >= 0:  # a record of fields only
                            pos = m.end()
                            self._leaf_record(lt + base, pos + base, buf[lt:pos])
                            if pos >= point and len(stack) <= MAX_POINT_DEPTH:
                                point = self._point(pos + base) - base
                            continue
                        # a start tag and its fields: what the general path does
                        # with them, without scanning them again
                        self.elements += 1
                        self._start(m.group(2), lt + base, fields + base, False)
                        if self._jumped:
                            return True
                        n = buf.count(b"</", fields, stop)
                        self.elements += n
                        el = stack[-1]
                        el.nchild += n
                        self._first_child(el)
                        pos = stop
                        continue
            gt = find(b">", lt)
            if gt >= 0 and (buf.find(b'"', lt, gt) >= 0 or buf.find(b"'", lt, gt) >= 0):
                gt = quoted_tag_end(buf, lt, base)
            if gt < 0:
                pos = lt
                break
            empty = buf[gt - 1] == 0x2F
            name = buf[lt + 1 : gt - 1 if empty else gt].split(None, 1)[0]
            self.elements += 1
            if buf.find(b"xmlns:", lt, gt) >= 0:
                raise NotCanonical("the document declares namespace prefixes")
            self._start(name, lt + base, gt + 1 + base, empty)
            if self._jumped:
                return True
            pos = gt + 1
        self._scan = pos + base
        self._trim()
        return False

    def _point(self, at: int) -> int:
        """Take a checkpoint at ``at`` (just after an end tag); the offset of
        the next.  None where the open elements hold more than
        ``MAX_CHECKPOINT_BUFFER`` bytes not yet cut: inside one record of
        50 MB of fields, every checkpoint kept all of it so far -- stored
        sizes growing with the square of the record, then a catalog row past
        SQLite's limit after the snapshot was committed.  A checkpoint is
        only a place a later night may resume from."""
        if at - self._keep(at) <= MAX_CHECKPOINT_BUFFER:
            self.checkpoints.append((at, self.checkpoint(at)))
        self._next_point = at + self._every
        return self._next_point

    def _start(self, name: bytes, start: int, end: int, empty: bool) -> None:
        if b":" in name:
            raise NotCanonical(f"element {name.decode(errors='replace')} has a namespace prefix")
        stack = self._stack
        if not stack:
            if self._root is not None:
                raise XmlSyntax("more than one root element")
            if start > MAX_PROLOGUE:
                raise NotCanonical("more than a megabyte before the root element")
            self._prologue = self._buf[: start - self._base]
        else:
            parent = stack[-1]
            parent.nchild += 1
            if parent.pieces is None:
                self._first_child(parent)
        if not empty:
            if len(stack) >= MAX_DEPTH:
                raise NotCanonical(f"elements nested deeper than {MAX_DEPTH} levels")
            el = OpenElement(name, start)
            el.head = end
            el.records0 = self.records
            el.elements0 = self.elements
            stack.append(el)
            if self._grafts is not None and len(stack) > 1:
                tag = self._buf[start - self._base : end - self._base]
                if tag in self._grafts.tags:
                    self._graft(tag, el)
        elif not stack:  # an empty root element: a record without children
            self._finish(OpenElement(name, start), end)

    def _leaf_record(self, start: int, end: int, fragment: bytes) -> None:
        """A record of fields only, ``fragment`` at ``start``..``end``: what
        :meth:`_start`, the fields, :meth:`_end` and :meth:`_finish` would do
        for it, in one step (the scanner's hottest path)."""
        self.elements += fragment.count(b"</")  # the record's and each field's
        parent = self._stack[-1]
        parent.nchild += 1
        if parent.pieces is None:
            self._first_child(parent)
        if MARKER_TAG_B in fragment:
            name = fragment[1:].split(None, 1)[0].split(b">", 1)[0]
            raise NotCanonical(
                f"element {name.decode(errors='replace')} holds text that looks like a run marker"
            )
        self.records += 1
        h = _leaf_hasher()
        h.update(fragment)
        self._hang(
            parent, self._slice(parent.cursor, start), h.digest(), [], _LEAF_PREFIX + fragment
        )
        parent.cursor = end
        parent.run_at = parent.nchild

    def _first_child(self, el: OpenElement) -> None:
        """``el`` has a child element, so it will be a record: the bytes of its
        parent up to ``el`` are settled (they are ``el``'s gap in its parent)."""
        el.pieces = []
        stack = self._stack
        if len(stack) > 1:
            grand = stack[-2]
            el.gap = self._slice(grand.cursor, el.start)
            grand.cursor = el.start

    def _end(self, end: int, name: bytes) -> None:
        stack = self._stack
        if not stack or stack[-1].name != name:
            raise XmlSyntax(f"mismatched end tag </{name.decode(errors='replace')}>")
        el = stack.pop()
        if el.pieces is None and stack:
            return  # a leaf: its bytes stay inline in the parent's fragment
        self._finish(el, end)

    def _finish(self, el: OpenElement, end: int) -> None:
        """``el`` (ending at ``end``) is a record: store it and hang it on its parent."""
        pieces = el.pieces or []
        pieces.append(self._slice(el.cursor, end))
        fragment = b"".join(pieces)
        if fragment.count(MARKER_TAG_B) != len(el.runs):
            raise NotCanonical(
                f"element {el.name.decode(errors='replace')} holds text that looks like a run marker"
            )
        self.records += 1
        stack = self._stack
        if el.runs or not stack:
            refs = [r.builder.finish() for r in el.runs]
            body = encode_element([r.sep or b"" for r in el.runs], fragment)
            if not stack:  # the root is an object of its own; other records go in groups
                self._root = self._sink.put_tree(refs, body)
                self._trailer_from = end
                return
            rid = object_id(ObjectType.TREE, encode_tree(refs, body))
        else:
            # A record of fields only, most of a backup: its body is "X", no
            # separators, the fragment; its id is hashed without building the
            # tree envelope (no references: one zero byte) around it.
            refs = []
            body = _LEAF_PREFIX + fragment
            h = _leaf_hasher()
            h.update(fragment)
            rid = h.digest()
        parent = stack[-1]
        self._hang(parent, el.gap, rid, refs, body)
        parent.cursor = end
        parent.run_at = parent.nchild

    def _hang(
        self, parent: OpenElement, gap: bytes, rid: ObjectId, refs: list[ObjectId], body: bytes
    ) -> None:
        """Add a record to ``parent``'s open run if it follows the run's last
        record with the same text between; else start a run (and a marker)."""
        runs = parent.runs
        if runs and parent.run_at == parent.nchild - 1 and b"<" not in gap:
            run = runs[-1]
            if run.sep is None or run.sep == gap:
                run.sep = gap
                run.builder.append(rid, refs, body)
                return
        assert parent.pieces is not None
        parent.pieces.append(gap)
        parent.pieces.append(MARKER)
        builder = RecordListBuilder(self._sink)
        builder.append(rid, refs, body)
        runs.append(Run(builder))

    def _slice(self, start: int, stop: int) -> bytes:
        return self._buf[start - self._base : stop - self._base]

    def _keep(self, scan: int) -> int:
        """The first byte an open element still needs (the stack is not empty)."""
        stack = self._stack
        keep = stack[-1].cursor
        if len(stack) > 1 and stack[-1].pieces is None:
            keep = min(keep, stack[-2].cursor)
        return min(keep, scan)

    def _trim(self) -> None:
        """Drop the bytes no open element needs any more."""
        stack = self._stack
        if stack:
            keep = self._keep(self._scan)
        elif self._root is None:  # still in the prologue
            if len(self._buf) > MAX_PROLOGUE:
                raise NotCanonical("more than a megabyte before the root element")
            return
        else:
            keep = self._trailer_from
            if self._base + len(self._buf) - keep > MAX_PROLOGUE:
                raise NotCanonical("more than a megabyte after the root element")
        cut = keep - self._base
        if cut > 0:
            self._buf = self._buf[cut:]
            self._base = keep
