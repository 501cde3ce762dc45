"""Semantic diff of two snapshots' manifest trees.

The walk descends only where ids differ: equal members, records and list
chunks are skipped unread, so the cost grows with the change, not with the
course.  Lists of records are compared chunk by chunk (content-defined
boundaries keep unchanged stretches as equal chunk ids), which yields just the
records that differ; those are then paired by key -- element name plus ``id``
attribute, or position for id-less elements -- into modified records, whose
fields are compared one by one.  A record whose exact content was removed in
one place and added in another is reported as a move.  What it finds is
changes.py's (the records, their groups and their lines).
"""

from __future__ import annotations

from collections.abc import Iterator

from coursevault.diff.changes import (
    FieldChange,
    MemberChange,
    RecordChange,
    TreeDiff,
    short_text_diff,
)
from coursevault.diff.changes import iter_lines as iter_lines  # for existing importers
from coursevault.errors import BadInputError
from coursevault.moodle2.archiveindex import INDEX_NAME
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
            ma.kind != mb.kind
            or ma.entry.get("target") != mb.entry.get("target")  # a hard link's: no content
            or (ma.content != mb.content and not _same_document(get, ma, mb))
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
