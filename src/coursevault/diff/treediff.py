"""Semantic diff of two snapshots' manifest trees.

The walk descends only where ids differ: equal members, records and list
chunks are skipped unread, so the cost grows with the change, not with the
course.  Lists of records are compared chunk by chunk (content-defined
boundaries keep unchanged stretches as equal chunk ids), which yields just the
records that differ; those are then paired by key -- element name plus ``id``
attribute, or position for id-less elements -- into modified records, whose
fields are compared one by one.  A record whose exact content was removed in
one place and added in another is reported as a move.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from coursevault.errors import BadInputError
from coursevault.moodle2.archiveindex import INDEX_NAME
from coursevault.moodle2.layout import course_part
from coursevault.store.ids import ObjectId
from coursevault.store.treecodec import decode_tree, read_varint
from coursevault.tree.archive_tree import ArchiveTree, Member, load_archive
from coursevault.tree.elements import (
    Element,
    children,
    document_root,
    fields,
    load_record,
    record_element,
)
from coursevault.tree.nodes import Getter, Record, decode_group

LONG_TEXT = 80
# (member path, a changed record's field by name or None) -> the part of the
# course it belongs to (moodle2.layout.course_part)
PartOf = Callable[[str, Callable[[str], str | None] | None], str]


@dataclass
class FieldChange:
    name: str
    old: str | None
    new: str | None
    diff: list[str] | None = None  # short unified diff for long text

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"field": self.name, "old": self.old, "new": self.new}
        if self.diff is not None:
            d["diff"] = self.diff
        return d


@dataclass
class RecordChange:
    change: str  # "added", "removed", "modified", "moved"
    member: str
    path: str  # element address inside the member
    tag: str
    id: str | None
    fields: list[FieldChange] = field(default_factory=list)
    moved_from: str | None = None  # "member:path" for moves
    oid: ObjectId | None = None  # the record's content id (added/removed), to find moves

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "change": self.change,
            "member": self.member,
            "path": self.path,
            "tag": self.tag,
            "id": self.id,
        }
        if self.fields:
            d["fields"] = [f.as_dict() for f in self.fields]
        if self.moved_from:
            d["moved_from"] = self.moved_from
        return d


@dataclass
class MemberChange:
    change: str  # "added", "removed", "modified"
    path: str
    kind: str  # member kind: file or dir
    old_size: int | None
    new_size: int | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TreeDiff:
    members: list[MemberChange] = field(default_factory=list)
    records: list[RecordChange] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"added": 0, "removed": 0, "modified": 0, "moved": 0}
        for r in self.records:
            out[r.change] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "members": [m.as_dict() for m in self.members],
            "records": [r.as_dict() for r in self.records],
            "counts": self.counts(),
            "groups": self.groups(),
        }

    def groups(self, part_of: PartOf = course_part) -> dict[str, dict[str, int]]:
        """Counts per part of the course (for --stat): by Moodle's layout,
        activity, section, file area or top-level file, unless ``part_of``
        names another."""
        out: dict[str, dict[str, int]] = {}
        for m in self.members:
            g = out.setdefault(group_of(m.path, None, part_of), _zero())
            g[f"members_{m.change}"] += 1
        for r in self.records:
            g = out.setdefault(group_of(r.member, r, part_of), _zero())
            g[r.change] += 1
        return dict(sorted(out.items()))


def _zero() -> dict[str, int]:
    return {
        "added": 0,
        "removed": 0,
        "modified": 0,
        "moved": 0,
        "members_added": 0,
        "members_removed": 0,
        "members_modified": 0,
    }


def group_of(
    member_path: str, record: RecordChange | None = None, part_of: PartOf = course_part
) -> str:
    """The part of a course a change belongs to, by ``part_of`` (Moodle's
    layout unless told otherwise: the walk itself knows no layout)."""
    if record is None:
        return part_of(member_path, None)
    fields = record.fields
    return part_of(
        member_path, lambda name: next((f.new or f.old for f in fields if f.name == name), None)
    )


# -- the walk -------------------------------------------------------------------------
def diff_snapshots(
    get: Getter, root_a: ObjectId, root_b: ObjectId, prefix: str | None = None
) -> TreeDiff:
    result = TreeDiff()
    if root_a == root_b and not prefix:
        return result
    tree_a = load_archive(get, root_a)
    tree_b = tree_a if root_b == root_a else load_archive(get, root_b)
    if prefix and not any(_in_prefix(m.path, prefix) for m in [*tree_a.members, *tree_b.members]):
        # a mistyped path would otherwise read as "no change"
        raise BadInputError(f"neither snapshot has a member at {prefix!r}")
    if root_a == root_b:
        return result
    _diff_members(get, tree_a, tree_b, prefix, result)
    _find_moves(result)
    return result


def _in_prefix(path: str, prefix: str | None) -> bool:
    if not prefix:
        return True
    p = prefix.rstrip("/")
    return path == p or path.startswith(p + "/") or path.startswith(p + ":")


def _diff_members(
    get: Getter, a: ArchiveTree, b: ArchiveTree, prefix: str | None, out: TreeDiff
) -> None:
    by_a = {m.path: m for m in a.members}
    by_b = {m.path: m for m in b.members}
    for path, mb in by_b.items():
        if not _in_prefix(path, prefix) or path in ("", INDEX_NAME):
            continue
        ma = by_a.get(path)
        if ma is None:
            out.members.append(MemberChange("added", path, mb.kind, None, mb.size))
            if mb.content_kind == "xml" and mb.content is not None:
                _whole_document(get, path, mb.content, "added", out)
        elif ma.node != mb.node and (
            ma.kind != mb.kind or (ma.content != mb.content and not _same_document(get, ma, mb))
        ):
            out.members.append(MemberChange("modified", path, mb.kind, ma.size, mb.size))
            if _both_xml(ma, mb):
                _diff_documents(get, path, ma.content, mb.content, out)  # type: ignore[arg-type]
    for path, ma in by_a.items():
        if path in by_b or not _in_prefix(path, prefix) or path in ("", INDEX_NAME):
            continue
        out.members.append(MemberChange("removed", path, ma.kind, ma.size, None))
        if ma.content_kind == "xml" and ma.content is not None:
            _whole_document(get, path, ma.content, "removed", out)


def _both_xml(a: Member, b: Member) -> bool:
    return (
        a.content_kind == "xml"
        and b.content_kind == "xml"
        and a.content is not None
        and b.content is not None
    )


def _same_document(get: Getter, a: Member, b: Member) -> bool:
    """Whether two XML members' documents are the same bytes stored under
    ``D`` nodes that differ only in naming their length: a document stored
    before ``D`` nodes named one and the same document stored after."""
    if not _both_xml(a, b) or a.content is None or b.content is None:
        return False
    refs_a, body_a = decode_tree(get(a.content)[1])
    refs_b, body_b = decode_tree(get(b.content)[1])
    return body_a == body_b and refs_a[:1] == refs_b[:1] and a.size == b.size


def _whole_document(get: Getter, member: str, doc: ObjectId, change: str, out: TreeDiff) -> None:
    """Every id-bearing record of an added or removed document (for moves and counts)."""
    root = document_root(get, doc)
    stack: list[tuple[Element, str]] = [(root, "/" + _step(root, None))]
    while stack:
        el, path = stack.pop()
        if "id" in el.attrs:
            out.records.append(
                RecordChange(change, member, path, el.tag, el.attrs["id"], oid=el.oid)
            )
        for index, child in enumerate(c for c in children(get, el) if c.is_record):
            stack.append((child, f"{path}/{_step(child, index)}"))


def _diff_documents(
    get: Getter, member: str, doc_a: ObjectId, doc_b: ObjectId, out: TreeDiff
) -> None:
    ra, rb = _root_id(get, doc_a), _root_id(get, doc_b)
    if ra == rb:
        return
    a, b = load_record(get, ra), load_record(get, rb)
    _diff_records(get, member, a, b, "/" + _step(b, None), out)


def _root_id(get: Getter, doc: ObjectId) -> ObjectId:
    return decode_tree(get(doc)[1])[0][0]


def _step(el: Element, index: int | None) -> str:
    if "id" in el.attrs:
        return f"{el.tag}[@id={el.attrs['id']}]"
    return el.tag


def _diff_records(
    get: Getter, member: str, a: Element, b: Element, path: str, out: TreeDiff
) -> None:
    """a and b are the same record in two versions (ids differ).

    Records nest as deep as the XML does, and ingest accepts documents
    nested deeper than Python's recursion limit, so the pairs of records to
    compare next are taken from a list of walks in progress (each a
    generator of :func:`_record_pairs`), not by recursion; the changes come
    out in the same order as a recursive walk's.
    """
    walks = [_record_pairs(get, member, a, b, path, out)]
    while walks:
        pair = next(walks[-1], None)
        if pair is None:
            walks.pop()
        else:
            walks.append(_record_pairs(get, member, *pair, out))


def _record_pairs(
    get: Getter, member: str, a: Element, b: Element, path: str, out: TreeDiff
) -> Iterator[tuple[Element, Element, str]]:
    """Compare a and b's fields and runs; yield the pairs of their child
    records that differ, to be compared in turn (see :func:`_diff_records`)."""
    changes = _field_changes(a, b)
    if changes:
        out.records.append(
            RecordChange("modified", member, path, b.tag, b.attrs.get("id"), changes)
        )
    runs_a, runs_b = a._runs or [], b._runs or []
    # pair runs by position; each run is a list of sibling records
    for i in range(max(len(runs_a), len(runs_b))):
        ra = runs_a[i] if i < len(runs_a) else None
        rb = runs_b[i] if i < len(runs_b) else None
        if ra == rb:
            continue
        cache: dict[ObjectId, Record] = {}
        only_a, only_b = _list_difference(get, ra, rb, cache)
        yield from _pair_records(get, member, path, only_a, only_b, out, cache)


def _pair_records(
    get: Getter,
    member: str,
    parent_path: str,
    only_a: list[ObjectId],
    only_b: list[ObjectId],
    out: TreeDiff,
    cache: dict[ObjectId, Record],
) -> Iterator[tuple[Element, Element, str]]:
    """Report the records added and removed; yield those present in both
    versions (paired by key), with their paths, to be compared."""
    recs_a = [_load(get, cache, oid) for oid in only_a]
    recs_b = [_load(get, cache, oid) for oid in only_b]
    keyed_a = _keys(recs_a)
    keyed_b = _keys(recs_b)
    for key, rb in keyed_b.items():
        step = _step(rb, None)
        ra = keyed_a.get(key)
        if ra is None:
            _added_or_removed(get, member, f"{parent_path}/{step}", rb, "added", out)
        else:
            yield ra, rb, f"{parent_path}/{step}"
    for key, ra in keyed_a.items():
        if key not in keyed_b:
            _added_or_removed(get, member, f"{parent_path}/{_step(ra, None)}", ra, "removed", out)


def _keys(recs: list[Element]) -> dict[tuple[str, str], Element]:
    out: dict[tuple[str, str], Element] = {}
    seen: dict[str, int] = {}
    for r in recs:
        if "id" in r.attrs:
            out[(r.tag, "id=" + r.attrs["id"])] = r
        else:
            n = seen.get(r.tag, 0)
            seen[r.tag] = n + 1
            out[(r.tag, f"#{n}")] = r
    return out


def _added_or_removed(
    get: Getter, member: str, path: str, rec: Element, change: str, out: TreeDiff
) -> None:
    out.records.append(
        RecordChange(change, member, path, rec.tag, rec.attrs.get("id"), oid=rec.oid)
    )


def _field_changes(a: Element, b: Element) -> list[FieldChange]:
    fa = {f"@{k}": v for k, v in a.attrs.items()} | fields(a)
    fb = {f"@{k}": v for k, v in b.attrs.items()} | fields(b)
    changes = []
    for name in list(fa) + [n for n in fb if n not in fa]:
        old, new = fa.get(name), fb.get(name)
        if old == new:
            continue
        diff = None
        if old is not None and new is not None and (len(old) > LONG_TEXT or len(new) > LONG_TEXT):
            diff = short_text_diff(old, new)
        changes.append(FieldChange(name, old, new, diff))
    return changes


def short_text_diff(old: str, new: str, max_lines: int = 12) -> list[str]:
    """A few lines of unified diff; long one-line HTML is split at tags and sentences."""

    def lines(text: str) -> list[str]:
        text = text.replace("&gt;", "&gt;\n").replace("</p>", "</p>\n").replace(". ", ".\n")
        return text.splitlines()

    out = [
        line
        for line in difflib.unified_diff(lines(old), lines(new), lineterm="", n=1)
        if not line.startswith(("---", "+++"))
    ]
    if len(out) > max_lines:
        out = [*out[:max_lines], f"... ({len(out) - max_lines} more lines)"]
    return out


# -- lists ----------------------------------------------------------------------------
def _load(get: Getter, cache: dict[ObjectId, Record], oid: ObjectId) -> Element:
    rec = cache.get(oid)
    return record_element(rec) if rec is not None else load_record(get, oid)


def _group_ids(refs: list[ObjectId], body: bytes, cache: dict[ObjectId, Record]) -> list[ObjectId]:
    """The ids of a record group's records (kept in ``cache`` for loading)."""
    ids = []
    for rec in decode_group(refs, body):
        rid = rec.id
        cache[rid] = rec
        ids.append(rid)
    return ids


def _list_level(
    get: Getter, oid: ObjectId, cache: dict[ObjectId, Record]
) -> tuple[int, list[ObjectId]]:
    """(level of the items, items) one step below a run's root; records are level -1.

    ``R`` groups stand where ``L`` chunks of level 0 stood before records were
    grouped, and a group's records have the ids their ``X`` nodes would have,
    so runs written either way compare record by record.
    """
    refs, body = decode_tree(get(oid)[1])
    kind = body[:1]
    if kind == b"L":
        level, _ = read_varint(body, 1)
        return level - 1, refs
    if kind == b"R":
        return -1, _group_ids(refs, body, cache)
    return -1, [oid]


def _list_difference(
    get: Getter, a: ObjectId | None, b: ObjectId | None, cache: dict[ObjectId, Record]
) -> tuple[list[ObjectId], list[ObjectId]]:
    """Items of list a not in b and of b not in a, reading only chunks that differ."""
    la, ia = _list_level(get, a, cache) if a is not None else (-1, [])
    lb, ib = _list_level(get, b, cache) if b is not None else (-1, [])
    while la > lb:
        la, ia = _expand(get, ia, la, cache)
    while lb > la:
        lb, ib = _expand(get, ib, lb, cache)
    while True:
        common = set(ia) & set(ib)
        ia = [x for x in ia if x not in common]
        ib = [x for x in ib if x not in common]
        if la < 0 or (not ia and not ib):
            return ia, ib
        la, ia = _expand(get, ia, la, cache)
        lb, ib = _expand(get, ib, lb, cache)


def _expand(
    get: Getter, chunks: list[ObjectId], level: int, cache: dict[ObjectId, Record]
) -> tuple[int, list[ObjectId]]:
    """Replace chunks of ``level`` by their children (level - 1; -1 = records)."""
    items: list[ObjectId] = []
    for c in chunks:
        refs, body = decode_tree(get(c)[1])
        if body[:1] == b"R":
            items.extend(_group_ids(refs, body, cache))
        else:
            items.extend(refs)
    return level - 1, items


# -- moves ----------------------------------------------------------------------------
def _find_moves(out: TreeDiff) -> None:
    """A record removed in one place and added, with the same content, in another: a move.

    Removed and added in the same place is no change at all: runs of records
    are paired by position, so a run that appears before others (a leaf that
    now holds records) shows the unchanged runs after it as removed and added.
    """
    removed: dict[ObjectId, RecordChange] = {}
    for r in out.records:
        if r.change == "removed" and r.oid is not None:
            removed.setdefault(r.oid, r)
    kept: list[RecordChange] = []
    moved_away: set[int] = set()
    for r in out.records:
        src = removed.get(r.oid) if r.change == "added" and r.oid is not None else None
        if src is not None and id(src) not in moved_away:
            moved_away.add(id(src))
            if (src.member, src.path) == (r.member, r.path):
                continue
            kept.append(
                RecordChange(
                    "moved", r.member, r.path, r.tag, r.id, moved_from=f"{src.member}:{src.path}"
                )
            )
            continue
        kept.append(r)
    out.records = [r for r in kept if id(r) not in moved_away]


def iter_lines(diff: TreeDiff) -> Iterator[str]:
    """Human-readable lines, grouped by member."""
    by_member: dict[str, list[RecordChange]] = {}
    for r in diff.records:
        by_member.setdefault(r.member, []).append(r)
    sign = {"added": "+", "removed": "-", "modified": "M", "moved": ">"}
    for m in diff.members:
        size = ""
        if m.change == "modified":
            size = f" ({m.old_size} -> {m.new_size} bytes)"
        elif m.kind != "dir":
            size = f" ({m.new_size if m.new_size is not None else m.old_size} bytes)"
        yield f"{sign[m.change]} {m.path}{'/' if m.kind == 'dir' else ''}{size}"
        yield from _record_lines(by_member.pop(m.path, []))
    for member, recs in by_member.items():
        yield f"M {member}"
        yield from _record_lines(recs)


def _record_lines(recs: list[RecordChange]) -> Iterator[str]:
    sign = {"added": "+", "removed": "-", "modified": "~", "moved": ">"}
    for r in recs:
        line = f"    {sign[r.change]} {r.path}"
        if r.moved_from:
            line += f"  (from {r.moved_from})"
        yield line
        for f in r.fields:
            if f.diff is not None:
                yield f"        {f.name}:"
                for d in f.diff:
                    yield f"          {d}"
            else:
                yield f"        {f.name}: {_short(f.old)} -> {_short(f.new)}"


def _short(v: str | None) -> str:
    if v is None:
        return "(absent)"
    return repr(v if len(v) <= 60 else v[:57] + "...")
