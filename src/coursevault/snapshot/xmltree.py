"""Streaming an XML document into element records (rendering them back: render.py).

Ingest scans the member's bytes for tags itself (``bytes.find`` does the
work, so it runs at C speed) while libxml2 checks, on the same bytes, that the
document is well-formed and has no DTD.  Whenever an element that contains
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
from collections.abc import Container
from dataclasses import dataclass
from typing import Any, Protocol

from lxml import etree

from coursevault.snapshot.listbuilder import RecordListBuilder
from coursevault.snapshot.nodes import (
    MARKER,
    MARKER_TAG,
    encode_document,
    encode_element,
    encode_length,
)
from coursevault.snapshot.sink import ObjectSink
from coursevault.store.ids import ObjectId, ObjectType, id_hasher, object_id
from coursevault.store.treecodec import encode_tree

MARKER_TAG_B = MARKER_TAG.encode()
_LEAF_PREFIX = encode_element([], b"")  # b"X" + varint 0
# object_id(TREE, encode_tree([], _LEAF_PREFIX + fragment)), hashed without building it
_leaf_hasher = id_hasher(ObjectType.TREE, encode_tree([], _LEAF_PREFIX))
MAX_PROLOGUE = 1 << 20
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

# The end of a start tag whose attribute values may hold '>' (only used when a
# tag has quotes in it; well-formedness is libxml2's job, not this pattern's).
# A stretch of leaf elements without attributes, ``<name>text</name>``, blanks
# between them: the fields that make up most of a Moodle backup.
_LEAVES = re.compile(rb"(?:[ \t\r\n]*<([A-Za-z_][\w.\-]*)>[^<]*</\1>)+")
# An element's start tag (double-quoted attributes only), the stretch of
# fields after it, and its end tag if that comes next.  Most records of a
# backup are fields only (a post, a grade, a log line): then one match stands
# for the general path's steps per tag.  A record with nested records (a post
# with ratings) is at least not scanned twice: its start tag and fields are
# taken from the match.  Anything else (a comment, an odd attribute, a record
# cut by the end of the data) goes the general way, which cuts the same.
_RECORD = re.compile(
    rb'(<([A-Za-z_][\w.\-]*+)(?:[ \t\r\n]++[A-Za-z_][\w.\-]*+="[^"<>]*+")*+>)'
    rb"((?:[ \t\r\n]*+<([A-Za-z_][\w.\-]*+)>[^<]*+</\4>)*+)"
    rb"(?:[ \t\r\n]*+(</\2>))?"
)
_START_TAG_END = re.compile(rb"""<[^\s/>]+(?:\s+[^\s=]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*/?>""")


class XmlSyntax(Exception):
    """Malformed or unsafe XML; the message says what and where (line)."""


class NotCanonical(Exception):
    """The document cannot be element-chunked exactly; keep its raw bytes."""


class _DoctypeFound(Exception):
    pass


class _NoEvents:
    """A parser target with no event methods: lxml then calls no Python per
    element and builds nothing, so libxml2 only checks the bytes."""

    def doctype(self, *_args: object) -> None:
        raise _DoctypeFound

    def close(self) -> None:
        return None


_LINE_COLUMN = re.compile(r", line \d+, column \d+$")


class _Validator:
    """libxml2 (lxml's feed parser) over the same bytes: well-formed, no DTD,
    no undeclared entities.

    A DOCTYPE is refused when it starts, before any entity in it is declared,
    so nothing is ever expanded or fetched (and no DTD or network is loaded
    in any case).  libxml2 with a target that takes no events checks a
    backup's XML in about half expat's time (0.27 against 0.49 s for the
    generated 100 MB course), which was a tenth of an ingest.
    """

    def __init__(self) -> None:
        self._p = etree.XMLParser(
            target=_NoEvents(),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=True,  # long text fields and deep documents are fine here
        )

    def feed(self, data: bytes, final: bool = False) -> None:
        try:
            if data:
                self._p.feed(data)
            if final:
                self._p.close()
        except _DoctypeFound:
            raise XmlSyntax("XML with a DTD (DOCTYPE) is not accepted") from None
        except etree.XMLSyntaxError as exc:
            # (some of libxml2's messages end in a line break)
            what = _LINE_COLUMN.sub("", (exc.msg or "not well-formed").strip())
            raise XmlSyntax(f"malformed XML at line {exc.lineno}: {what}") from None


class _Open:
    """An element being scanned."""

    __slots__ = (
        "cursor",
        "elements0",
        "gap",
        "head",
        "name",
        "nchild",
        "pieces",
        "records0",
        "run_at",
        "runs",
        "start",
    )

    def __init__(self, name: bytes, start: int) -> None:
        self.name = name
        self.start = start
        self.head = start  # the end of its start tag
        self.records0 = self.elements0 = 0  # the counts when it opened (grafting)
        self.cursor = start  # own bytes before this offset are in ``pieces``
        self.pieces: list[bytes] | None = None  # set once a child element opens
        self.runs: list[_Run] = []
        self.gap = b""  # the parent's bytes between its previous cut and this element
        self.nchild = 0  # child elements opened so far
        self.run_at = -1  # nchild when the open run's last record ended


@dataclass
class _Run:
    builder: RecordListBuilder
    sep: bytes | None = None


@dataclass
class Graft:
    """Where a cut may jump to: a checkpoint of an earlier cut taken inside an
    element that opened at ``start`` with the start tag just opened tonight,
    whose bytes from ``start`` to ``offset`` are tonight's too (the
    :class:`GraftSource` checked)."""

    offset: int  # the checkpoint's offset in the earlier cut
    start: int  # where the element opened in the earlier cut
    state: dict[str, Any]  # the checkpoint's state (XmlChunker.checkpoint)
    depth: int  # the element's place in ``state["stack"]``
    lines: int  # line breaks before ``offset`` moved to tonight's place
    every: int = 0  # the checkpoints' spacing from there on (0: unchanged)


class GraftSource(Protocol):
    """What a cut asks, at each element it opens, for a place to jump to (see
    :meth:`XmlChunker._graft`).  ``tags`` holds the start tags worth asking
    about; ``find`` gets the tag, where it starts, and how far the input has
    been fed."""

    @property
    def tags(self) -> Container[bytes]: ...

    def find(self, tag: bytes, start: int, fed: int) -> Graft | None: ...


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
        self._valid = _Validator()
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
        self._stack: list[_Open] = []
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
        there instead of cutting them again (snapshot/ingest.py).  The state
        is small: the open elements (their bytes not yet cut, runs, counters)
        and each run's open group and list chunks (ids).
        """
        keep = self._keep(offset)
        return {
            "keep": keep,
            "buf": self._buf[keep - self._base : offset - self._base].hex(),
            "prologue": (self._prologue or b"").hex(),
            "records": self.records,
            "elements": self.elements,
            "stack": [
                {
                    "name": el.name.hex(),
                    "start": el.start,
                    "head": el.head,
                    "records0": el.records0,
                    "elements0": el.elements0,
                    "cursor": el.cursor,
                    "pieces": None if el.pieces is None else [p.hex() for p in el.pieces],
                    "gap": el.gap.hex(),
                    "nchild": el.nchild,
                    "run_at": el.run_at,
                    "runs": [
                        {"sep": None if r.sep is None else r.sep.hex(), "list": r.builder.state()}
                        for r in el.runs
                    ],
                }
                for el in self._stack
            ],
        }

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
        c._prologue = bytes.fromhex(state["prologue"])
        c._base = int(state["keep"])
        c._buf = bytes.fromhex(state["buf"])
        if c._base + len(c._buf) != offset:
            raise ValueError("checkpoint: its bytes do not end at its offset")
        c._scan = c._size = offset
        c.records = int(state["records"])
        c.elements = int(state["elements"])
        c._stack.extend(_frame(sink, item, 0) for item in state["stack"])
        if not c._stack:
            raise ValueError("checkpoint: outside the root element")
        c._restart_validator(lines)
        return c

    def _restart_validator(self, lines: int) -> None:
        """A new libxml2 parser that goes on from the open elements, with
        ``lines`` line breaks before where the input goes on (see :meth:`resume`)."""
        assert self._prologue is not None
        head = self._prologue + b"".join(b"<" + el.name + b">" for el in self._stack)
        self._valid = _Validator()
        self._valid.feed(head + b"\n" * max(0, lines - head.count(b"\n")))

    # -- grafting --------------------------------------------------------------------
    def _graft(self, tag: bytes, el: _Open) -> None:
        """Jump from ``el``, which just opened, to a checkpoint an earlier cut
        took inside an element with the same start tag and the same bytes
        since, if the graft source knows one.

        Why this is exact: the state of an element and of everything open
        inside it depends only on the bytes since it opened; what it changes
        outside is settled when its first child opens (its gap, its parent's
        cursor: :meth:`_first_child`).  So the state at the earlier
        checkpoint, its offsets moved and tonight's elements above in place
        of that night's, is the state a cut of tonight's bytes would reach
        there.  Why it matters: a quiz's grades, near the top of quiz.xml,
        change every night, so no checkpoint of the night before can be
        resumed from, though the attempts below them (most of the file) are
        the same bytes, moved.
        """
        assert self._grafts is not None
        fed = self._base + len(self._buf)
        g = self._grafts.find(tag, el.start, fed)
        if g is None:
            return
        delta = el.start - g.start
        items = g.state["stack"][g.depth :]
        state = g.state
        try:
            frames = [_frame(self._sink, item, delta) for item in items]
            keep = int(state["keep"]) + delta
            old = bytes.fromhex(state["buf"])
            top = items[0]
            if (
                not frames
                or top["pieces"] is None
                or bytes.fromhex(top["name"]) != el.name
                or int(top["start"]) != g.start
                or keep < el.start
                or keep + len(old) != g.offset + delta
            ):
                return
            records = int(state["records"]) - int(top["records0"])
            elements = int(state["elements"]) - int(top["elements0"])
        except (ValueError, KeyError, TypeError):
            return  # a state this chunker cannot take: cut on
        stack = self._stack
        self._first_child(el)  # tonight's gap and parent cursor
        frames[0].gap = el.gap
        shift_records = el.records0 - int(top["records0"])
        shift_elements = el.elements0 - int(top["elements0"])
        for frame in frames:  # tonight's counts, for the checkpoints to come
            frame.records0 += shift_records
            frame.elements0 += shift_elements
        stack[-1] = frames[0]
        stack.extend(frames[1:])
        self.records += records
        self.elements += elements
        offset = g.offset + delta
        if offset <= fed:  # libxml2 has checked up to ``fed`` already
            self._buf = self._buf[keep - self._base :]
        else:  # those bytes are the earlier night's (the source checked)
            self._buf = old
            self._size = offset
            self._restart_validator(g.lines)
        self._base = keep
        self._scan = offset
        self.grafted += offset - el.start
        if g.every > 0:
            self._every = g.every
        if self._every > 0:
            # the state there is a checkpoint of tonight's: tomorrow's cut can
            # graft to it again, whatever follows
            self.checkpoints.append((offset, self.checkpoint(offset)))
            self._next_point = offset + self._every
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
        leaves = _LEAVES.match
        record = _RECORD.match
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
                    self.checkpoints.append((pos + base, self.checkpoint(pos + base)))
                    self._next_point = pos + base + self._every
                    point = pos + self._every
                continue
            if c == 0x21 or c == 0x3F:  # '!' comment, CDATA, doctype; '?' PI
                if buf.startswith(b"<!--", lt):
                    close = b"-->"
                elif buf.startswith(b"<![CDATA[", lt):
                    close = b"]]>"
                elif c == 0x3F:
                    close = b"?>"
                elif end_of_data - lt < 9:
                    pos = lt
                    break
                else:  # a DOCTYPE: the validator has refused it already
                    raise XmlSyntax("XML with a DTD (DOCTYPE) is not accepted")
                stop = find(close, lt + 2)
                if stop < 0:
                    pos = lt
                    break
                pos = stop + len(close)
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
                                self.checkpoints.append((pos + base, self.checkpoint(pos + base)))
                                self._next_point = pos + base + self._every
                                point = pos + self._every
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
            if gt < 0:
                pos = lt
                break
            if buf.find(b'"', lt, gt) >= 0 or buf.find(b"'", lt, gt) >= 0:
                m = _START_TAG_END.match(buf, lt)
                if m is None:
                    # a quoted '>' whose tag has not fully arrived (or a shape the
                    # pattern does not know: then give up rather than buffer on)
                    if end_of_data - lt > MAX_PROLOGUE:
                        raise NotCanonical(
                            f"the chunker could not follow the markup at byte {lt + base}"
                        )
                    pos = lt
                    break
                gt = m.end() - 1
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
            el = _Open(name, start)
            el.head = end
            el.records0 = self.records
            el.elements0 = self.elements
            stack.append(el)
            if self._grafts is not None and len(stack) > 1:
                tag = self._buf[start - self._base : end - self._base]
                if tag in self._grafts.tags:
                    self._graft(tag, el)
        elif not stack:  # an empty root element: a record without children
            self._finish(_Open(name, start), end)

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

    def _first_child(self, el: _Open) -> None:
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

    def _finish(self, el: _Open, end: int) -> None:
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
        self, parent: _Open, gap: bytes, rid: ObjectId, refs: list[ObjectId], body: bytes
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
        runs.append(_Run(builder))

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


def _frame(sink: ObjectSink, item: dict[str, Any], delta: int) -> _Open:
    """An open element from its :meth:`XmlChunker.checkpoint` form, its
    offsets moved by ``delta``."""
    el = _Open(bytes.fromhex(item["name"]), int(item["start"]) + delta)
    el.head = int(item.get("head", item["start"])) + delta
    el.records0 = int(item.get("records0", 0))
    el.elements0 = int(item.get("elements0", 0))
    el.cursor = int(item["cursor"]) + delta
    pieces = item["pieces"]
    el.pieces = None if pieces is None else [bytes.fromhex(p) for p in pieces]
    el.gap = bytes.fromhex(item["gap"])
    el.nchild = int(item["nchild"])
    el.run_at = int(item["run_at"])
    for run in item["runs"]:
        sep = None if run["sep"] is None else bytes.fromhex(run["sep"])
        el.runs.append(_Run(RecordListBuilder.resume(sink, run["list"]), sep))
    return el
