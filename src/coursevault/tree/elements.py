"""Walking a stored XML document element by element, without rendering it all.

A record (``X`` node) is parsed on its own -- its fragment is small -- and its
child records are fetched only when the walk descends into them.  ``ls``,
``cat`` with an element address, and diff all walk documents this way.

Element addresses look like ``/activity/choice/options/option[@id=3]``: each
step is a name, then any number of predicates -- ``[@attr=value]`` (the value
quoted if it holds ``/``, ``[``, ``]`` or a quote) and at most one 1-based
``[N]`` -- so every label ``ls`` prints (``progress[@questionid=2][@userid=3]``)
is an address step.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree

from coursevault.errors import BadInputError
from coursevault.store.ids import ObjectId
from coursevault.store.treecodec import decode_tree
from coursevault.tree.nodes import (
    MARKER_TAG,
    Getter,
    NodeFormatError,
    Record,
    decode_document,
    decode_element,
    iter_records,
)
from coursevault.tree.render import Writer, render_record

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True, strip_cdata=False
)
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
# a quoted value may escape \\ \" \' \n \r \t (a value holding both quotes, or
# a line break, which a label printed as is broke ls's one line a record)
_PREDICATE = re.compile(
    r"\[(?:@([A-Za-z0-9_.\-]+)=(?:\"((?:[^\"\\]|\\.)*)\"|'((?:[^'\\]|\\.)*)'"
    r"|([^\]\"'/\[]*))|(\d+))\]"
)
_PLAIN_VALUE = re.compile(r"[^\]\"'/\[\\\n\r\t]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPE = re.compile(r"[\\\"\n\r\t]")


@dataclass(frozen=True)
class Step:
    """One step of an element address: a name, attribute values, a position."""

    name: str
    attrs: tuple[tuple[str, str], ...] = ()
    pos: int | None = None  # 1-based among the elements matching name and attrs


@dataclass
class Element:
    """An element of a stored document: a record (with ``oid``) or an inline leaf."""

    tag: str
    attrs: dict[str, str]
    oid: ObjectId | None = None  # set for records: the record's id (see nodes.Record)
    leaf: etree._Element | None = None  # set for inline leaves
    _parsed: etree._Element | None = None
    _runs: list[ObjectId] | None = None
    _record: Record | None = None

    @property
    def is_record(self) -> bool:
        return self.oid is not None

    @property
    def text(self) -> str | None:
        return None if self.leaf is None else (self.leaf.text or "")

    def label(self) -> str:
        """The element as an address step (see :func:`parse_address`)."""
        return self.tag + "".join(f"[@{k}={_quoted(v)}]" for k, v in self.attrs.items())


def _quoted(value: str) -> str:
    if _PLAIN_VALUE.fullmatch(value):
        return value
    if not _ESCAPE.search(value.replace('"', "")) and not ('"' in value and "'" in value):
        return f"'{value}'" if '"' in value else f'"{value}"'
    escaped = _ESCAPE.sub(lambda m: "\\" + {"\n": "n", "\r": "r", "\t": "t"}.get(m[0], m[0]),
                          value)
    return f'"{escaped}"'


def _unquoted(text: str) -> str:
    return _UNESCAPE.sub(lambda m: _ESCAPES.get(m[1], m[1]), text)


def load_record(get: Getter, oid: ObjectId) -> Element:
    """A record stored as an object of its own (a document's root, or written
    before records were grouped)."""
    _t, payload = get(oid)
    try:
        refs, body = decode_tree(payload)
    except ValueError as exc:  # the store checked its hash: a writer stored it so
        raise NodeFormatError(f"record {oid.hex()}: {exc}") from exc
    return record_element(Record(refs, body, oid))


def record_element(rec: Record) -> Element:
    """A stored record as an element; one that is not a well-formed element
    node is reported as corruption (``ls``/``cat``/diff say so in one line)."""
    try:
        node = decode_element(rec.refs, rec.body)
        root = etree.fromstring(node.fragment, _PARSER)
    except NodeFormatError:
        raise
    except (ValueError, IndexError, etree.XMLSyntaxError) as exc:
        raise NodeFormatError(f"record {rec.id.hex()}: its node is malformed: {exc}") from exc
    return Element(
        str(root.tag),
        dict(root.attrib),
        oid=rec.id,
        _parsed=root,
        _runs=list(rec.refs),
        _record=rec,
    )


def document_root(get: Getter, doc: ObjectId) -> Element:
    _t, payload = get(doc)
    try:
        refs, body = decode_tree(payload)
    except ValueError as exc:
        raise NodeFormatError(f"document {doc.hex()}: {exc}") from exc
    decode_document(body)
    if not refs:
        raise NodeFormatError(f"document {doc.hex()} names no root record")
    return load_record(get, refs[0])


def children(get: Getter, el: Element) -> Iterator[Element]:
    """The element's children in document order (leaves inline, records fetched)."""
    if el._parsed is None or el._runs is None:
        return
    run = 0
    for child in el._parsed:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions
        if child.tag == MARKER_TAG:
            for rec in iter_records(get, el._runs[run]):
                yield record_element(rec)
            run += 1
        else:
            yield Element(str(child.tag), dict(child.attrib), leaf=child)


def fields(el: Element) -> dict[str, str | None]:
    """A record's leaf children as name -> text (``$@NULL@$`` stays as written)."""
    out: dict[str, str | None] = {}
    if el._parsed is None:
        return out
    for child in el._parsed:
        if isinstance(child.tag, str) and child.tag != MARKER_TAG and not len(child):
            out[str(child.tag)] = child.text or ""
    return out


def element_bytes(get: Getter, el: Element) -> bytes:
    if el._record is not None:
        parts: list[bytes] = []
        w = Writer(parts.append)
        render_record(get, el._record, w)
        w.flush()
        return b"".join(parts)
    if el.leaf is None:
        raise NodeFormatError(f"element {el.tag} has neither record nor leaf")
    return _unself_close(etree.tostring(el.leaf, encoding="UTF-8", with_tail=False))


def _unself_close(fragment: bytes) -> bytes:
    """Turn lxml's ``<tag/>`` back into Moodle's ``<tag></tag>`` (a leaf shown by ``cat``)."""
    end = fragment.find(b"/>")
    if end < 0:
        return fragment
    start = fragment.rfind(b"<", 0, end)
    name = fragment[start + 1 : end].split(None, 1)[0]
    return fragment[:end] + b"></" + name + b">" + fragment[end + 2 :]


def parse_address(address: str) -> list[Step]:
    if not address.startswith("/"):
        raise BadInputError(f"element address must start with '/': {address!r}")
    steps: list[Step] = []
    i, end = 0, len(address.rstrip("/"))
    while i < end:
        start = i + 1  # past the '/'
        m = _NAME.match(address, start)
        i = m.end() if m else start
        attrs: list[tuple[str, str]] = []
        pos: int | None = None
        while m and i < end and address[i] == "[":
            p = _PREDICATE.match(address, i)
            if p is None or (p.group(5) and pos is not None):
                m = None
                break
            if p.group(5):
                pos = int(p.group(5))
            else:
                quoted, single, plain = p.group(2, 3, 4)
                value = _unquoted(quoted) if quoted is not None else (
                    _unquoted(single) if single is not None else plain)
                attrs.append((p.group(1), value))
            i = p.end()
        if m is None or (i < end and address[i] != "/"):
            stop = address.find("/", i)
            part = address[start : stop if stop >= 0 else len(address)]
            raise BadInputError(f"invalid step {part!r} in element address {address!r}")
        steps.append(Step(m.group(), tuple(attrs), pos))
    if not steps:
        raise BadInputError(f"element address names no element: {address!r}")
    return steps


def find(get: Getter, doc: ObjectId, address: str) -> Iterator[Element]:
    """All elements matching an address, in document order.

    A walk with a list of open levels, not recursion: an address is as long
    as the document is deep, and ingest accepts documents nested deeper
    than Python's recursion limit.
    """
    steps = parse_address(address)
    # per open level: the candidates left, the step they are matched against,
    # and how many have matched it so far
    levels: list[tuple[Iterator[Element], int, list[int]]] = [
        (iter([document_root(get, doc)]), 0, [0])
    ]
    while levels:
        candidates, k, count = levels[-1]
        step = steps[k]
        for el in candidates:
            if el.tag != step.name or any(el.attrs.get(a) != v for a, v in step.attrs):
                continue
            count[0] += 1
            if step.pos is not None and count[0] != step.pos:
                continue
            if k + 1 == len(steps):
                yield el
            elif el.is_record:
                if step.pos is not None:  # this level is done once the child level is
                    levels[-1] = (iter(()), k, count)
                levels.append((children(get, el), k + 1, [0]))
                break
            if step.pos is not None:
                levels.pop()
                break
        else:
            levels.pop()


def outline(get: Getter, doc: ObjectId) -> Iterator[tuple[int, Element, int]]:
    """(depth, record, number of fields) for every record, depth first, lazily
    (with a list of open levels, not recursion, for documents of any depth)."""
    root = document_root(get, doc)
    yield 0, root, len(fields(root))
    levels = [children(get, root)]
    while levels:
        for child in levels[-1]:
            if child.is_record:
                yield len(levels), child, len(fields(child))
                levels.append(children(get, child))
                break
        else:
            levels.pop()
