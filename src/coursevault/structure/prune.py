"""Cutting the elements a narrower backup would not have written out of a
member, by the definitions that wrote it.

A member written with one set of settings (users on) is paired with the
definition's tree built for those settings and with the tree for the
narrower ones (users off, ``userinfo`` elements pruned, sources gated by a
setting gone).  An element that the narrower tree does not have, or marks
as user data, is cut whole -- its lines, from the indentation before its
opening tag to the end of the line of its closing tag, so that what stays
is byte for byte what Moodle's XML writer writes for the narrower backup:
each element starts a line of its own, and a container left empty keeps
its opening line and its closing line.

The walk also says which ids the kept and the cut elements annotated and
which file areas they named, so the caller can narrow inforef.xml,
files.xml and the final members as a narrower backup's annotations would
have.  Nothing here knows Moodle's members; nothing here reads a database.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from coursevault.structure.elements import NO_ROWS, Nested

NULL = "$@NULL@$"
_TAG = re.compile(r"<(/?)([A-Za-z_][\w.:-]*)([^>]*?)(/?)>")
_ATTR = re.compile(r'([\w:-]+)="([^"]*)"')

# (item, id) annotated; (component, filearea, itemid or None for the whole area)
Annotation = tuple[str, str]
Area = tuple[str, str, str | None]


@dataclass
class Pruned:
    """One member after the walk."""

    data: str
    kept: set[Annotation] = field(default_factory=set)
    cut: set[Annotation] = field(default_factory=set)
    kept_areas: set[Area] = field(default_factory=set)
    cut_areas: set[Area] = field(default_factory=set)


@dataclass
class _Open:
    full: Nested | None
    narrow: Nested | None
    cut: bool
    start: int  # offset of the opening tag's line
    values: dict[str, str] = field(default_factory=dict)


def _child(node: Nested | None, name: str) -> Nested | None:
    if node is None:
        return None
    for child in node.children:
        if child.name == name:
            return child
    return None


def _is_field(node: Nested | None, name: str) -> bool:
    return node is not None and (name in node.fields or name in node.compute)


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end + 1


def prune(text: str, full: Nested, narrow: Nested, *, users: bool = True) -> Pruned:
    """``text`` less the elements ``narrow`` does not keep (see the module's
    docstring), with the annotations and file areas on either side;
    ``users``: whether the narrower backup has user data."""
    out = Pruned(text)
    stack: list[_Open] = []
    cuts: list[tuple[int, int]] = []
    field_name: str | None = None
    field_start = 0
    for m in _TAG.finditer(text):
        closing, name, attrs, empty = m.group(1), m.group(2), m.group(3), m.group(4)
        if field_name is not None:  # inside a final element: only its end matters
            if closing and name == field_name:
                stack[-1].values[field_name] = text[field_start:m.start()]
                field_name = None
            continue
        if closing:
            if not stack:
                continue
            done = stack.pop()
            if not done.cut and not users and _user_row(done):
                done.cut = True
            _record(done, out)
            if done.cut and not (stack and stack[-1].cut):
                cuts.append((done.start, _line_end(text, m.end())))
            continue
        parent = stack[-1] if stack else None
        if parent is not None and _is_field(parent.full, name) and not empty:
            field_name, field_start = name, m.end()
            continue
        if parent is None:
            node_full = full if full.name == name else None
            node_narrow = narrow if narrow.name == name else None
        else:
            node_full, node_narrow = _child(parent.full, name), _child(parent.narrow, name)
        cut = (parent is not None and parent.cut) or _cut(node_full, node_narrow, users)
        entry = _Open(node_full, node_narrow, cut, _line_start(text, m.start()),
                      dict(_ATTR.findall(attrs)))
        if empty:
            _record(entry, out)
            if cut and not (parent is not None and parent.cut):
                cuts.append((entry.start, _line_end(text, m.end())))
            continue
        stack.append(entry)
    if cuts:
        pieces, at = [], 0
        for start, end in cuts:
            pieces.append(text[at:start])
            at = end
        pieces.append(text[at:])
        out.data = "".join(pieces)
    return out


def _cut(full: Nested | None, narrow: Nested | None, users: bool) -> bool:
    """An element the full tree declares and the narrow one drops: not in
    it, user data there, or its rows' source gone with a setting."""
    if full is None:
        return False  # not the definition's: left as it is
    if narrow is None or (narrow.userinfo and not users):
        return True
    if full.source is None or full.source is NO_ROWS:
        return False
    return narrow.source is None or narrow.source is NO_ROWS


def _user_row(entry: _Open) -> bool:
    """A row the tree's ``user_rows`` calls user data (the narrower
    backup's source skips it)."""
    rule = None if entry.full is None else entry.full.user_rows
    return rule is not None and rule(entry.values)


def _record(entry: _Open, out: Pruned) -> None:
    node = entry.full
    if node is None:
        return
    annotations = out.cut if entry.cut else out.kept
    for item, name in node.annotations:
        value = entry.values.get(name)
        if value not in (None, "", NULL):
            annotations.add((item, str(value)))
    areas = out.cut_areas if entry.cut else out.kept_areas
    for area in node.files:
        itemid = None
        if area.itemid_field is not None:
            itemid = entry.values.get(area.itemid_field)
            if itemid in (None, "", NULL):
                continue
        areas.add((area.component, area.filearea, itemid))


def by_item(annotations: set[Annotation]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for item, value in annotations:
        found[item].add(value)
    return found
