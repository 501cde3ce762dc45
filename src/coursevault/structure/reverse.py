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
from collections.abc import Iterator
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


class MemberReader:
    """Records of one member; ``unknown`` counts undeclared element paths."""

    def __init__(self, member: str, data: bytes) -> None:
        self.member = member
        try:
            self.root = ET.fromstring(data)
        except ET.ParseError as exc:
            raise BadInputError(f"{member}: not well-formed XML ({exc})") from None
        self.unknown: Counter[str] = Counter()

    def records(self, tree: Nested, *, at: str | None = None) -> Iterator[Record]:
        """Records of ``tree`` in document order.  ``at`` names the element
        of the document that ``tree`` describes (default: the root)."""
        starts = [self.root] if at is None or self.root.tag == at else self.root.iter(at)
        for start in starts:
            if start.tag != tree.name:
                raise BadInputError(
                    f"{self.member}: expected <{tree.name}>, found <{start.tag}>"
                )
            yield from self._walk(start, tree, None, tree.name)

    def _walk(self, el: ET.Element, node: Nested, parent: Record | None,
              path: str) -> Iterator[Record]:
        values: dict[str, str | None] = {}
        for name in node.attrs:
            if name in el.attrib:
                values[name] = _value(el.attrib[name])
        finals = set(node.fields)
        nested = {child.name: child for child in node.children}
        inner: list[tuple[ET.Element, Nested]] = []
        for child in el:
            if child.tag in nested:
                inner.append((child, nested[child.tag]))
            elif child.tag in finals:
                values[child.tag] = _value(child.text or "")
            else:
                self.unknown[f"{path}/{child.tag}"] += 1
        record = Record(node, values, parent)
        yield record
        for child_el, child_node in inner:
            yield from self._walk(child_el, child_node, record, f"{path}/{child_node.name}")


def _value(text: str) -> str | None:
    return None if text == NULL else text
