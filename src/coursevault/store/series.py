"""A course's series of snapshots: their order, each one's parent, its head ref.

Writers of one course may run at once (nights caught up in parallel, two
hosts), so a snapshot's parent cannot be read before its session commits:
what another writer commits meanwhile would be missed, and two nights would
both name the night before them, or none.  So the parent is chosen at
commit, under the series' reference update (docs/format.md, "Snapshots"):

1. read ``refs/heads/<course>`` (publishing the snapshot it says was last
   committed, if its writer died before writing the file);
2. list the snapshots and take the newest of the course at or before this
   one's time, in history order, as the parent; build the record;
3. compare-and-swap the ref to name this snapshot (the ref changes with
   every commit, so two writers cannot both win from the same state);
   on a lost race, start again at 1;
4. only then write the snapshot file.

A snapshot is therefore visible only once its parent is settled: no writer
can pick a snapshot whose record may still change.  The ref holds the
record of the last commit, so a writer killed between 3 and 4 loses
nothing; the next writer of the course, or the next exclusive lock (prune,
forget), writes its file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from coursevault.errors import BackendError, BadInputError
from coursevault.store.catalog import SnapshotRow
from coursevault.store.ids import ObjectType, object_id

if TYPE_CHECKING:
    from coursevault.store.repository import Repository

# A lost race means another writer of the course committed; this many in a
# row means something else is wrong.
MAX_ATTEMPTS = 100


class SnapshotDraft(NamedTuple):
    """A snapshot record whose ``parents`` the store fills in at commit.

    ``build(parents)`` returns the record; it may be called more than once
    (once per lost race), and must give the same ``course`` and ``epoch``.
    """

    course: str
    epoch: float
    build: Callable[[list[str]], dict[str, Any]]


def fixed_draft(record: dict[str, Any]) -> SnapshotDraft:
    """A draft of a record whose parents the caller chose (tests, imports)."""
    try:
        course, epoch = str(record["course"]), float(record["epoch"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"invalid snapshot record: {exc}") from exc
    return SnapshotDraft(course, epoch, lambda _parents: record)


def encode_record(record: dict[str, Any]) -> bytes:
    """A record's canonical bytes (its id is their hash): no line breaks."""
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def head_key(course: str) -> str:
    return f"refs/heads/{course}"


def history_order(rows: list[SnapshotRow]) -> list[SnapshotRow]:
    """Snapshots as history shows them: by time, and among snapshots of the
    same time (an archive ingested again) parents before their children, then
    by id.  ``rows`` come sorted by (epoch, id); only ties are reordered.

    So the newest snapshot at or before a time -- what ``KEY@<time>``
    selects, and what a new snapshot of that time takes as its parent -- is
    the one ingested last, and ingesting a night again continues the chain.
    """
    out: list[SnapshotRow] = []
    i = 0
    while i < len(rows):
        j = i + 1
        while j < len(rows) and rows[j].epoch == rows[i].epoch:
            j += 1
        tie = rows[i:j]
        if len(tie) > 1:
            gen = _generations(tie)
            tie = sorted(tie, key=lambda r: (gen[r.id], r.id))
        out.extend(tie)
        i = j
    return out


def _generations(tie: list[SnapshotRow]) -> dict[str, int]:
    """How many snapshots of the same course and time each one descends from."""
    by_id = {r.id: r for r in tie}
    gen: dict[str, int] = {}
    for row in tie:
        chain: list[str] = []
        cur: SnapshotRow | None = row
        while cur is not None and cur.id not in gen and cur.id not in chain:
            chain.append(cur.id)
            parent = first_parent(cur.record)
            up = by_id.get(parent) if parent else None
            cur = up if up is not None and up.course == cur.course else None
        base = gen[cur.id] + 1 if cur is not None and cur.id in gen else 0
        for n, sid in enumerate(reversed(chain)):
            gen[sid] = base + n
    return gen


def first_parent(record: dict[str, Any]) -> str | None:
    parents = record.get("parents")
    if isinstance(parents, list) and parents and isinstance(parents[0], str):
        return parents[0]
    return None


def parent_of(rows: list[SnapshotRow], epoch: float) -> list[str]:
    """The parents a snapshot of ``epoch`` takes: the newest of ``rows`` (one
    course, in history order) at or before that time, if any."""
    before = [r.id for r in rows if r.epoch <= epoch]
    return before[-1:]


class _Head(NamedTuple):
    raw: bytes | None  # the ref's bytes as read (what the swap expects)
    newest: str | None
    last: bytes | None  # the record of the snapshot committed last


def _read_head(repo: Repository, course: str) -> _Head:
    try:
        raw = repo.backend.read(head_key(course))
    except FileNotFoundError:
        return _Head(None, None, None)
    lines = raw.split(b"\n")
    newest = lines[0].decode(errors="replace").strip() or None
    last = lines[1] if len(lines) > 1 and lines[1].startswith(b"{") else None
    return _Head(raw, newest, last)


def publish_last(repo: Repository, course: str) -> _Head:
    """Write the snapshot file of the course's last commit if it is missing
    (its writer died after the swap); return the head as read."""
    from coursevault.store.repository import snapshot_key

    head = _read_head(repo, course)
    if head.last is not None:
        snap_id = object_id(ObjectType.SNAPSHOT, head.last).hex()
        if not repo.backend.exists(snapshot_key(snap_id)):
            repo.backend.write(snapshot_key(snap_id), head.last)
    return head


def publish_all(repo: Repository) -> None:
    """Publish every course's last commit (under the exclusive lock, before
    prune or forget decide what snapshots there are)."""
    for key, _size in list(repo.backend.list("refs/heads/")):
        publish_last(repo, key.split("/", 2)[2])


def record_snapshot(repo: Repository, draft: SnapshotDraft) -> str:
    """Commit ``draft`` to its course's series (see the module docstring);
    return the snapshot id.  The objects it names must be indexed already."""
    from coursevault.store.repository import snapshot_key, snapshot_row

    course = draft.course
    for _attempt in range(MAX_ATTEMPTS):
        head = publish_last(repo, course)
        repo.sync_catalog()
        rows = repo.snapshots(course)
        record = draft.build(parent_of(rows, draft.epoch))
        data = encode_record(record)
        snap_id = object_id(ObjectType.SNAPSHOT, data).hex()
        try:
            row = snapshot_row(snap_id, record)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"invalid snapshot record: {exc}") from exc
        if row.course != course or row.epoch != draft.epoch:
            raise BadInputError("a snapshot draft changed its course or time")
        newest = history_order(sorted([*rows, row], key=lambda r: (r.epoch, r.id)))[-1].id
        ref = newest.encode() + b"\n" + data + b"\n"
        if repo.backend.compare_and_swap(head_key(course), head.raw, ref):
            repo.backend.write(snapshot_key(snap_id), data)
            repo.catalog.add_snapshot(row)
            repo.catalog.set_ref(f"heads/{course}", newest)
            return snap_id
    raise BackendError(f"could not update {head_key(course)}: too many concurrent updates")


def drop_from_head(repo: Repository, course: str, snap_id: str) -> None:
    """After ``snap_id`` was deleted (forget, under the exclusive lock): the
    ref must not name it, or the next writer would publish it again."""
    head = _read_head(repo, course)
    if head.raw is None:
        return
    last = head.last
    if last is not None and object_id(ObjectType.SNAPSHOT, last).hex() == snap_id:
        last = None
    if head.newest != snap_id and last is head.last:
        return
    rows = repo.snapshots(course)
    if not rows:
        repo.backend.delete(head_key(course))
        return
    ref = rows[-1].id.encode() + b"\n" + (last + b"\n" if last is not None else b"")
    if not repo.backend.compare_and_swap(head_key(course), head.raw, ref):
        raise BackendError(f"{head_key(course)} changed under the exclusive lock")
    repo.catalog.set_ref(f"heads/{course}", rows[-1].id)
