"""Where in a course each stored object and element record of a snapshot sits.

An incremental backup should store only what holds a change: the records
that changed and the path from them up to the snapshot's root.  To check
that on object counts, a snapshot's tree is walked once and every object
(and every element record, which sits inline in a record group but has an
id of its own: docs/format.md, "Element records") is given its *place*:
``(archive)`` for the archive node, the member list and the times; the
member's name for its ``M`` node and content; ``name:/a[@id=1]/b`` for an
element record and for the runs (groups, list chunks) of its child records.
Plain code, not a fixture: only test_incremental_quiz.py uses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from coursevault.store.ids import ObjectId, ObjectType
from coursevault.store.treecodec import decode_tree
from coursevault.tree.nodes import Getter, Record, decode_element, decode_group, decode_json_node

ARCHIVE = "(archive)"
_START = re.compile(rb"<([A-Za-z0-9_.\-]+)((?:\s+[A-Za-z0-9_.\-]+=\"[^\"]*\")*)\s*/?>")
_ATTR = re.compile(rb"([A-Za-z0-9_.\-]+)=\"([^\"]*)\"")


@dataclass(frozen=True)
class Node:
    """An object of the store (``record`` False) or an element record (True:
    ``fragment`` is its own content -- its bytes with a marker where each run
    of child records goes; not the runs' ids, nor the separators between
    their records, which change when a run of one record gains a second),
    at one place of the tree."""

    oid: ObjectId
    place: str
    record: bool = False
    fragment: bytes = b""


def walk(get: Getter, root: ObjectId) -> Iterator[Node]:
    """Every object and record under an archive snapshot's root, with its
    place; an object met at several places is yielded at each."""
    refs, _body = decode_tree(get(root)[1])
    yield Node(root, ARCHIVE)
    members_root, mtimes = refs
    yield Node(mtimes, ARCHIVE)
    yield from _members(get, members_root)


def _members(get: Getter, oid: ObjectId) -> Iterator[Node]:
    refs, body = decode_tree(get(oid)[1])
    if body[:1] == b"L":
        yield Node(oid, ARCHIVE)
        for ref in refs:
            yield from _members(get, ref)
        return
    name = str(decode_json_node(body, b"M")["name"])
    yield Node(oid, name)
    if not refs:
        return
    [content] = refs
    yield Node(content, name)
    otype, payload = get(content)
    if otype != ObjectType.TREE:
        return
    crefs, cbody = decode_tree(payload)
    if cbody[:1] == b"D":  # [root record, length blob]
        yield from (Node(ref, name) for ref in crefs[1:])
        yield Node(crefs[0], name + ":")
        rrefs, rbody = decode_tree(get(crefs[0])[1])
        yield from _record(get, Record(rrefs, rbody, crefs[0]), name + ":")
    else:  # chunked content
        yield from (Node(ref, name) for ref in crefs)


def _record(get: Getter, rec: Record, parent: str) -> Iterator[Node]:
    node = decode_element(rec.refs, rec.body)
    start = _START.match(node.fragment)
    if start is None:
        raise ValueError(f"record {rec.id.hex()} does not start with a start tag")
    attrs = "".join(
        f"[@{k.decode()}={v.decode()}]" for k, v in _ATTR.findall(start.group(2)) if k == b"id"
    )
    here = f"{parent}/{start.group(1).decode()}{attrs}"
    yield Node(rec.id, here, record=True, fragment=node.fragment)
    for run in rec.refs:
        yield from _run(get, run, here)


def _run(get: Getter, oid: ObjectId, parent: str) -> Iterator[Node]:
    """A run of ``parent``'s child records: a group, a list chunk of groups,
    or (written before groups) one ``X`` object."""
    yield Node(oid, parent)
    refs, body = decode_tree(get(oid)[1])
    kind = body[:1]
    if kind == b"L":
        for ref in refs:
            yield from _run(get, ref, parent)
    elif kind == b"R":
        for rec in decode_group(refs, body):
            yield from _record(get, rec, parent)
    elif kind == b"X":
        yield from _record(get, Record(refs, body, oid), parent)
    else:
        raise ValueError(f"{oid.hex()} under {parent} is not a run of records")


@dataclass
class Increment:
    """What a snapshot added to the ones before it: its new objects and new
    records, each with every place it sits at in the snapshot; the new
    records' fragments, and the previous snapshot's by place (to tell a
    record whose own content changed from one rewritten for a child's sake)."""

    objects: dict[ObjectId, set[str]]
    records: dict[ObjectId, set[str]]
    fragments: dict[ObjectId, bytes]
    fragments_before: dict[str, set[bytes]]

    def object_places(self) -> set[str]:
        return {p for places in self.objects.values() for p in places}

    def record_places(self) -> set[str]:
        return {p for places in self.records.values() for p in places}


def increment(get: Getter, roots: list[ObjectId]) -> Increment:
    """The last of ``roots`` against all before it (a course's snapshots, oldest first)."""
    seen: set[ObjectId] = set()
    for root in roots[:-1]:
        seen.update(n.oid for n in walk(get, root))
    before: dict[str, set[bytes]] = {}
    if len(roots) > 1:
        for n in walk(get, roots[-2]):
            if n.record:
                before.setdefault(n.place, set()).add(n.fragment)
    inc = Increment({}, {}, {}, before)
    for n in walk(get, roots[-1]):
        if n.oid in seen:
            continue
        if n.record:
            inc.records.setdefault(n.oid, set()).add(n.place)
            inc.fragments[n.oid] = n.fragment
        else:
            inc.objects.setdefault(n.oid, set()).add(n.place)
    return inc


def within(place: str, subtree: str) -> bool:
    """``place`` is ``subtree`` or below it (a member, or an element address)."""
    return place == subtree or place.startswith((subtree + "/", subtree + ":"))
