"""Streaming an XML document into element records, and rendering it back.

Ingest feeds the member's bytes to lxml's pull parser.  Whenever an element
that has children ends, it becomes a *record*: its exact bytes -- lxml's
serialisation of the subtree, in which child records were already replaced by
markers -- are stored as one ``X`` node, and the element itself is cut out of
the parse tree.  So the tree in memory is only the path from the root to the
current element plus the leaf fields of open records: memory stays flat
however long the file (Moodle 1.9 needed 311 MB for a 12.5 MB file).
Consecutive sibling records become one run, chunked by :class:`ListBuilder`.

lxml serialises exactly as Moodle's xml_writer escapes (``&``, ``<``, ``>``
in text, also ``"`` in attributes, raw UTF-8), except that it self-closes
empty elements where Moodle writes ``<tag></tag>``; that one rule is undone on
each fragment.  Whatever else a hand edit may have done (comments, CDATA,
other indentation, character references), the caller verifies by rendering
the stored tree and comparing its hash with the original's, and keeps the raw
bytes when they differ.  Export is then concatenation, byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from coursevault.snapshot.listbuilder import ListBuilder
from coursevault.snapshot.nodes import (
    MARKER,
    MARKER_TAG,
    Getter,
    decode_document,
    decode_element,
    encode_document,
    encode_element,
    iter_list,
)
from coursevault.snapshot.sink import ObjectSink
from coursevault.store.ids import ObjectId, ObjectType, object_id
from coursevault.store.treecodec import decode_tree, encode_tree

MARKER_TAG_B = MARKER_TAG.encode()
FEED_SIZE = 1 << 20
MAX_PROLOGUE = 1 << 20


class XmlSyntax(Exception):
    """Malformed or unsafe XML; the message says what and where (line)."""


class NotCanonical(Exception):
    """The document cannot be element-chunked exactly; keep its raw bytes."""


def _unself_close(fragment: bytes) -> bytes:
    """Turn lxml's ``<tag/>`` (and ``<tag a="1"/>``) back into Moodle's ``<tag></tag>``."""
    end = fragment.find(b"/>")
    if end < 0:
        return fragment
    out = []
    pos = 0
    while end >= 0:
        start = fragment.rfind(b"<", pos, end)
        if start < 0:
            break
        tag = fragment[start + 1 : end]
        name = tag.split(None, 1)[0] if tag else b""
        if name != MARKER_TAG_B:
            out.append(fragment[pos:end])
            out.append(b"></" + name + b">")
            pos = end + 2
        end = fragment.find(b"/>", end + 2)
    out.append(fragment[pos:])
    return b"".join(out)


def find_root_start(head: bytes) -> int:
    """Offset of the root element's ``<`` in the document head; -1 if not there yet.

    Refuses DOCTYPE: a DTD's entities are never expanded nor fetched, and no
    Moodle backup has one.
    """
    pos = 0
    while True:
        lt = head.find(b"<", pos)
        if lt < 0 or lt + 1 >= len(head):
            return -1
        nxt = head[lt + 1 : lt + 2]
        if nxt == b"?":
            end = head.find(b"?>", lt)
            if end < 0:
                return -1
            pos = end + 2
        elif head.startswith(b"<!--", lt):
            end = head.find(b"-->", lt)
            if end < 0:
                return -1
            pos = end + 3
        elif nxt == b"!":
            raise XmlSyntax("XML with a DTD (DOCTYPE) is not accepted")
        else:
            return lt


@dataclass
class _Run:
    marker: etree._Element
    builder: ListBuilder
    sep: bytes | None = None


@dataclass
class ChunkResult:
    """A chunked document whose ``D`` node is not stored yet: :meth:`store` it
    only once verified, so that a stored ``D`` node always is a verified one."""

    root: ObjectId
    body: bytes  # the D node's body (prologue, trailer)
    records: int
    elements: int
    size: int
    known: bool  # the repository had this document before, hence verified it then

    @property
    def document(self) -> ObjectId:
        return object_id(ObjectType.TREE, encode_tree([self.root], self.body))

    def store(self, sink: ObjectSink) -> ObjectId:
        return sink.put_tree([self.root], self.body)

    def render(self, get: Getter, write: Callable[[bytes], object]) -> None:
        prologue, trailer = decode_document(self.body)
        out = _Writer(write)
        out.add(prologue)
        render_element(get, self.root, out)
        out.add(trailer)
        out.flush()


@dataclass
class _State:
    # runs of child records, keyed by their parent element
    runs: dict[etree._Element, list[_Run]] = field(default_factory=dict)
    open_run: dict[etree._Element, _Run] = field(default_factory=dict)
    records: int = 0
    elements: int = 0
    root: ObjectId | None = None


class XmlChunker:
    """Feed bytes in order with :meth:`feed`, then :meth:`close` for the document id."""

    def __init__(self, sink: ObjectSink) -> None:
        self._sink = sink
        self._parser = etree.XMLPullParser(
            events=("end",),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=True,
            strip_cdata=False,
            remove_comments=False,
            remove_pis=False,
        )
        self._head = bytearray()
        self._prologue: bytes | None = None
        self._tail = b""
        self._size = 0
        self._state = _State()

    def feed(self, data: bytes) -> None:
        self._size += len(data)
        self._tail = (self._tail + data)[-4096:] if len(data) < 4096 else data[-4096:]
        if self._prologue is None:
            self._head += data
            start = find_root_start(bytes(self._head))
            if start < 0:
                if len(self._head) > MAX_PROLOGUE:
                    raise XmlSyntax("no root element in the first megabyte")
                return
            self._prologue = bytes(self._head[:start])
            data = bytes(self._head)
            self._head = bytearray()
        try:
            self._parser.feed(data)
            self._consume()
        except etree.XMLSyntaxError as exc:
            raise XmlSyntax(_describe(exc)) from None

    def close(self) -> ChunkResult:
        if self._prologue is None:
            if not self._size:
                raise XmlSyntax("empty XML file")
            raise XmlSyntax("no root element")
        try:
            root = self._parser.close()
            self._consume()
        except etree.XMLSyntaxError as exc:
            raise XmlSyntax(_describe(exc)) from None
        st = self._state
        if st.root is None:  # a root without children ends like a leaf
            self._record(root)
        if st.root is None:
            raise XmlSyntax("document has no root element")
        end = self._tail.rfind(b">")
        trailer = self._tail[end + 1 :]
        body = encode_document(self._prologue, trailer)
        known = self._sink.has(object_id(ObjectType.TREE, encode_tree([st.root], body)))
        return ChunkResult(st.root, body, st.records, st.elements, self._size, known)

    def _consume(self) -> None:
        st = self._state
        for _event, el in self._parser.read_events():
            st.elements += 1
            if len(el):
                self._record(el)
            # a leaf stays inline in its parent's fragment

    def _record(self, el: etree._Element) -> None:
        st = self._state
        runs = st.runs.pop(el, [])
        st.open_run.pop(el, None)
        refs = [r.builder.finish() for r in runs]
        seps = [r.sep or b"" for r in runs]
        fragment = _unself_close(etree.tostring(el, encoding="UTF-8", with_tail=False))
        if fragment.count(MARKER) != len(refs):
            raise NotCanonical(f"element {el.tag} holds text that looks like a run marker")
        oid = self._sink.put_tree(refs, encode_element(seps, fragment))
        st.records += 1
        parent = el.getparent()
        if parent is None:
            st.root = oid
            return
        prev = el.getprevious()
        run = st.open_run.get(parent)
        if run is not None and prev is run.marker:
            gap = (prev.tail or "").encode()
            if run.sep is None or run.sep == gap:
                run.sep = gap
                run.builder.append(oid)
                prev.tail = el.tail
                parent.remove(el)
                return
        tail = el.tail
        el.clear()
        el.tag = MARKER_TAG
        el.tail = tail
        builder = ListBuilder(self._sink)
        builder.append(oid)
        run = _Run(el, builder)
        st.runs.setdefault(parent, []).append(run)
        st.open_run[parent] = run


def _describe(exc: etree.XMLSyntaxError) -> str:
    line = getattr(exc, "lineno", None) or (exc.position[0] if exc.position else None)
    msg = str(exc.msg) if getattr(exc, "msg", None) else str(exc)
    msg = re.sub(r", line \d+, column \d+$", "", msg)
    return f"malformed XML at line {line}: {msg}" if line else f"malformed XML: {msg}"


# -- rendering -----------------------------------------------------------------------
class _Writer:
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


def render_element(get: Getter, oid: ObjectId, out: _Writer) -> None:
    _t, payload = get(oid)
    refs, body = decode_tree(payload)
    node = decode_element(refs, body)
    if not refs:
        out.add(node.fragment)
        return
    pieces = node.fragment.split(MARKER)
    if len(pieces) != len(refs) + 1:
        raise ValueError(f"element {oid.hex()}: {len(pieces) - 1} markers for {len(refs)} runs")
    out.add(pieces[0])
    for i, run in enumerate(refs):
        first = True
        for rec in iter_list(get, run):
            if not first:
                out.add(node.seps[i])
            render_element(get, rec, out)
            first = False
        out.add(pieces[i + 1])


def render_document(get: Getter, oid: ObjectId, write: Callable[[bytes], object]) -> None:
    """Write a document's exact bytes through ``write`` in pieces of about 1 MiB."""
    _t, payload = get(oid)
    refs, body = decode_tree(payload)
    prologue, trailer = decode_document(body)
    out = _Writer(write)
    out.add(prologue)
    render_element(get, refs[0], out)
    out.add(trailer)
    out.flush()
