"""A backup member read back against the definition that wrote it.

Restore runs the definitions in reverse: the same :class:`Nested` tree that
says which table an element's rows came from, which ancestor row they
belong to and which ids they annotate, says where an element read from a
backup goes.  This module only pairs the XML with the tree: each element
instance that the tree declares becomes a :class:`Record` -- its attributes
and final elements as text (``$@NULL@$`` read as None), its parent record --
in document order, parents before children.  What to do with a record is
the restore steps' business (definitions/restore_*.py).

XML elements the tree does not declare (a newer Moodle's field, a plugin's
addition) are counted in ``unknown`` rather than failing the restore:
Moodle's restore ignores them too, but silently.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from coursevault.errors import BadInputError
from coursevault.structure.elements import Nested

NULL = "$@NULL@$"


@dataclass
class Record:
    """One element instance read from a member."""

    node: Nested
    values: dict[str, str | None]
    parent: Record | None
    new_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.node.name

    def old_id(self) -> str | None:
        return self.values.get("id")

    def up(self, field_name: str = "id", element: str | None = None) -> Record:
        """The nearest ancestor named ``element`` or, without one, the nearest
        with a value ``field_name`` -- as :class:`~structure.elements.Up` reads."""
        rec = self.parent
        while rec is not None:
            if element is not None:
                if rec.name == element:
                    return rec
            elif field_name in rec.values and rec.node.source is not None:
                return rec
            rec = rec.parent
        raise KeyError(f"{self.name} has no ancestor {element or field_name!r}")


# a member's bytes, whole or in pieces as they are rendered (SnapshotMembers.stream)
XmlSource = bytes | Iterable[bytes]


def _pieces(data: XmlSource, size: int) -> Iterable[bytes]:
    if isinstance(data, bytes):
        return (data[pos:pos + size] for pos in range(0, len(data), size))
    return data


class MemberReader:
    """Records of one member; ``unknown`` counts undeclared element paths.

    The member is parsed as a stream: expat calls :class:`_RecordTarget` for
    each element (no element tree is built), fed ``CHUNK`` bytes at a time,
    and the records it completes are yielded after each chunk; given the
    member in pieces as they are rendered (``XmlSource``), it never holds
    the member's bytes whole.  Memory
    holds the records of a chunk and the open elements' ancestors, not the
    document -- an M course's ``assign.xml`` of 600 submissions or a
    ``users.xml`` of a thousand users parsed whole took tens of MB, and
    this is faster too (no tree, no second walk).  A record is complete when
    its first nested element starts (Moodle's writer puts an element's
    final elements before its nested ones) or when it ends.  Malformed XML
    is a ``BadInputError`` where the parser finds it (inside a restore's one
    transaction: nothing it wrote stays).
    """

    CHUNK = 64 * 1024

    def __init__(self, member: str, data: XmlSource) -> None:
        self.member = member
        self.data = data
        self.unknown: Counter[str] = Counter()

    def records(self, tree: Nested) -> Iterator[Record]:
        """Records of ``tree`` (the document's root element) in document order."""
        target = _RecordTarget(self, tree)
        parser = ET.XMLParser(target=target)
        done = target.done
        try:
            for piece in _pieces(self.data, self.CHUNK):
                parser.feed(piece)
                if done:
                    yield from done
                    done.clear()
            parser.close()
        except ET.ParseError as exc:
            raise BadInputError(f"{self.member}: not well-formed XML ({exc})") from None
        yield from done


class _RecordTarget:
    """The parser's target: element events into records (``done``)."""

    def __init__(self, reader: MemberReader, tree: Nested) -> None:
        self.reader = reader
        self.tree = tree
        self.done: list[Record] = []
        self.frames: list[_Open] = []  # the definition's elements open
        self.skipping = 0  # depth inside an element not walked (unknown, or in a final)
        self.final: str | None = None  # the final element being read
        self.text: list[str] = []

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if self.skipping or self.final is not None:
            self.skipping += 1
            return
        frames = self.frames
        if not frames:
            if tag != self.tree.name:
                raise BadInputError(
                    f"{self.reader.member}: expected <{self.tree.name}>, found <{tag}>")
            frames.append(_Open(self.tree, attrib, None, self.tree.name))
            return
        top = frames[-1]
        node = top.nested.get(tag)
        if node is not None:
            if top.record is None:
                top.record = Record(top.node, top.values, top.parent)
                self.done.append(top.record)
            frames.append(_Open(node, attrib, top.record, f"{top.path}/{node.name}"))
        elif tag in top.finals:
            self.final = tag
            self.text = []
        else:
            self.reader.unknown[f"{top.path}/{tag}"] += 1
            self.skipping = 1

    def data(self, text: str) -> None:
        if self.final is not None and not self.skipping:
            self.text.append(text)

    def end(self, tag: str) -> None:
        if self.skipping:
            self.skipping -= 1
            return
        if self.final is not None:
            top = self.frames[-1]
            top.values[tag] = _value("".join(self.text))
            if top.record is not None:  # after a nested element: written without it
                self.reader.unknown[f"{top.path}/{tag} (after nested elements)"] += 1
            self.final = None
            return
        closed = self.frames.pop()
        if closed.record is None:
            self.done.append(Record(closed.node, closed.values, closed.parent))

    def close(self) -> None:
        return None


class _Open:
    """An element of the definition being read: its values so far, its record
    once made."""

    __slots__ = ("finals", "nested", "node", "parent", "path", "record", "values")

    def __init__(self, node: Nested, attrib: dict[str, str], parent: Record | None,
                 path: str) -> None:
        self.node = node
        self.parent = parent
        self.path = path
        self.values: dict[str, str | None] = {
            name: _value(attrib[name]) for name in node.attrs if name in attrib}
        self.nested, self.finals = _shape(node)
        self.record: Record | None = None


def _shape(node: Nested) -> tuple[dict[str, Nested], frozenset[str]]:
    """A node's nested elements by name and its final elements, kept on the
    node for the records after the first (made again if children were added)."""
    cached = getattr(node, "_reader_shape", None)
    if cached is not None and cached[0] == len(node.children):
        return cached[1], cached[2]
    nested = {child.name: child for child in node.children}
    finals = frozenset(node.fields)
    setattr(node, "_reader_shape", (len(node.children), nested, finals))  # noqa: B010
    return nested, finals


def _value(text: str) -> str | None:
    return None if text == NULL else text
