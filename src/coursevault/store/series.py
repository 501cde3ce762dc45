"""A series of snapshots: their order, each one's parent, its head ref.

A series is what the layers above keep the history of (a course, to them):
the store knows it only as a key, which the format calls ``course`` (in
the snapshot record and the catalog) and names its ref by.

Writers of one series may run at once (nights caught up in parallel, two
hosts), so a snapshot's parent cannot be read before its session commits:
what another writer commits meanwhile would be missed, and two nights would
both name the night before them, or none.  So a commit of a series happens
under its ref, ``refs/heads/<series>`` (docs/format.md, "Parents"):

1. reserve the ref: swap in a line naming this writer's lock, once no live
   writer's line is there (a dead writer's lock is gone or stale);
2. drop from the session's packs what others committed meanwhile and write
   its index files (``WriteSession._commit``): with the ref reserved, no
   snapshot of the series can appear between this and 3, so the parent's
   objects are not stored again;
3. list the snapshots and take the newest of the series at or before this
   one's time, in history order, as the parent; build the record; swap the
   ref to name this snapshot and hold its record (the ref changes with
   every commit, so two writers cannot both win from one state; a lost
   race -- a reservation taken over -- starts again at 1);
4. only then write the snapshot file.

A snapshot is therefore visible only once its parent is settled: no writer
can pick a snapshot whose record may still change.  The ref holds the record
of the last commit, so a writer killed between 3 and 4 loses nothing; the
next writer of the series, or the next exclusive lock (prune, forget),
writes its file.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from coursevault.errors import BackendError, BadInputError, CorruptionError, SnapshotFileError
from coursevault.store.catalog import SnapshotRow
from coursevault.store.catalog_sync import journal_files
from coursevault.store.ids import ObjectType, current_id_key, object_id, ref_name
from coursevault.store.journal import SNAPSHOT
from coursevault.store.locks import list_locks
from coursevault.store.snapshots import SERIES_FIELD, snapshot_row

if TYPE_CHECKING:
    from coursevault.store.repository import Repository

# A lost race means another writer of the series committed; this many in a
# row means something else is wrong.
MAX_ATTEMPTS = 100
RESERVED = b"committing "  # the ref line of a writer between steps 1 and 4
LAST = b"last "  # the ref line naming its record's snapshot id
SNAPSHOT_ID = re.compile(r"[0-9a-f]{64}")


class SnapshotDraft(NamedTuple):
    """A snapshot record whose ``parents`` the store fills in at commit.

    ``build(parents)`` returns the record; it may be called more than once
    (once per lost race), and must give the same ``series`` and ``epoch``.
    """

    series: str
    epoch: float
    build: Callable[[list[str]], dict[str, Any]]


def fixed_draft(record: dict[str, Any]) -> SnapshotDraft:
    """A draft of a record whose parents the caller chose (tests, imports)."""
    try:
        series, epoch = str(record[SERIES_FIELD]), float(record["epoch"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"invalid snapshot record: {exc}") from exc
    return SnapshotDraft(series, epoch, lambda _parents: record)


def encode_record(record: dict[str, Any]) -> bytes:
    """A record's canonical bytes (its id is their hash): no line breaks."""
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def head_key(series: str) -> str:
    return f"refs/heads/{ref_name(series)}"


def head_series(repo: Repository) -> list[str]:
    """Every series with a head ref: from the ref's name, or where names are
    keyed hashes (an encrypted repository) from the record the head holds."""
    keys = [k for k, _size in repo.backend.list("refs/heads/")]
    if current_id_key() is None:
        return [k.split("/", 2)[2] for k in keys]
    found = []
    for key in keys:
        last = _read_head_key(repo, key).last
        if last is not None:
            try:
                found.append(str(json.loads(last)[SERIES_FIELD]))
            except (ValueError, KeyError, TypeError):
                continue  # a damaged head: check reports it
    return found


def history_order(rows: list[SnapshotRow]) -> list[SnapshotRow]:
    """Snapshots as history shows them: by time, and among snapshots of the
    same time (an archive ingested again) parents before their children,
    then by the order they were committed in (the record's ``tie``, see
    :func:`tie_rank`; none: 0), then by id.  ``rows`` come sorted by (epoch,
    id); only ties are reordered.

    So the newest snapshot at or before a time -- what ``KEY@<time>``
    selects, what a new snapshot of that time takes as its parent, and what
    ``forget --keep-last`` keeps -- is the one ingested last, and ingesting
    a night again continues the chain.  The commit order matters once a
    snapshot between two of them is forgotten: the chain of parents is then
    broken, and the id alone picked the older one as the latest.
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
            tie = sorted(tie, key=lambda r: (gen[r.id], _tie(r.record), r.id))
        out.extend(tie)
        i = j
    return out


def _tie(record: dict[str, Any]) -> int:
    value = record.get("tie")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def tie_rank(rows: list[SnapshotRow], epoch: float) -> int:
    """The ``tie`` of a snapshot of ``epoch`` committed after ``rows`` (its
    series, in history order): one more than the snapshots of that time
    before it rank (a record without ``tie`` ranks as its place among
    them), 0 if there are none -- the field is then left out, and a
    night's record is what it always was.  Unlike a clock it is the same
    on every run of the same commands, and it survives the forgetting of
    the snapshots between."""
    same = [r for r in rows if r.epoch == epoch]
    return 1 + max(max(_tie(r.record), i) for i, r in enumerate(same)) if same else 0


def _generations(tie: list[SnapshotRow]) -> dict[str, int]:
    """How many snapshots of the same series and time each one descends from."""
    by_id = {r.id: r for r in tie}
    gen: dict[str, int] = {}
    for row in tie:
        chain: list[str] = []
        cur: SnapshotRow | None = row
        while cur is not None and cur.id not in gen and cur.id not in chain:
            chain.append(cur.id)
            parent = first_parent(cur.record)
            up = by_id.get(parent) if parent else None
            cur = up if up is not None and up.series == cur.series else None
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
    series, in history order) at or before that time, if any."""
    before = [r.id for r in rows if r.epoch <= epoch]
    return before[-1:]


class _Head(NamedTuple):
    raw: bytes | None  # the ref's bytes as read (what the swap expects)
    newest: str | None
    last: bytes | None  # the record of the snapshot committed last
    reserved: str | None  # the lock key of the writer committing now
    key: str = ""
    damaged: str | None = None  # why the ref cannot be trusted (then last is None)


def head_newest(repo: Repository, series: str) -> str | None:
    """The snapshot ``series``'s ref names as its newest (None: no ref, or a
    damaged one)."""
    return _read_head(repo, series).newest


def _read_head(repo: Repository, series: str) -> _Head:
    return _read_head_key(repo, head_key(series))


def _read_head_key(repo: Repository, key: str) -> _Head:
    head = _parse_head(repo, key)
    if head.damaged:
        # asked again: an answer cut short or garbled on its way from a
        # service (a 200 with half the body) is not damage, and sent the
        # user to `repair refs` for a sound ref
        head = _parse_head(repo, key)
    return head


def _parse_head(repo: Repository, key: str) -> _Head:
    try:
        raw = repo.backend.read(key)
    except FileNotFoundError:
        return _Head(None, None, None, None, key)
    except CorruptionError as exc:  # an encrypted ref that does not open
        return _Head(None, None, None, None, key, str(exc))
    lines = raw.split(b"\n")
    newest = lines[0].decode(errors="replace").strip() or None
    last = reserved = named = None
    for line in lines[1:]:
        if line.startswith(b"{"):
            last = line
        elif line.startswith(RESERVED):
            reserved = line[len(RESERVED) :].decode(errors="replace").strip()
        elif line.startswith(LAST):
            named = line[len(LAST) :].decode(errors="replace").strip()
    damaged = _damage(key, newest, last, named)
    if damaged:
        return _Head(raw, None, None, reserved, key, damaged)
    return _Head(raw, newest, last, reserved, key)


def _damage(key: str, newest: str | None, last: bytes | None, named: str | None) -> str | None:
    """Why a ref's content cannot be what a writer swapped in, if it cannot.
    Its record is written by the next writer as a snapshot file, so a
    damaged one must never be taken for a commit: the ``last`` line (the
    record's id; written since 2026-12-06) catches any change to the record;
    a ref of an earlier program is at least parsed and matched to its course."""
    if newest is not None and not SNAPSHOT_ID.fullmatch(newest):
        return "its first line is not a snapshot id"
    if last is None:
        return "a snapshot id without the record it names" if named is not None else None
    if named is not None and object_id(ObjectType.SNAPSHOT, last).hex() != named:
        return "its record does not match the snapshot id it names"
    try:
        row = snapshot_row(named or "0" * 64, json.loads(last))
    except (KeyError, TypeError, ValueError) as exc:
        return f"its record does not parse ({exc})"
    if head_key(row.series) != key:
        return f"its record belongs to another course ({row.series!r})"
    return None


def _encode_head(newest: str | None, last: bytes | None, reserved: str | None) -> bytes:
    out = (newest or "").encode() + b"\n"
    if last is not None:
        out += last + b"\n" + LAST + object_id(ObjectType.SNAPSHOT, last).hex().encode() + b"\n"
    if reserved is not None:
        out += RESERVED + reserved.encode() + b"\n"
    return out


def _holder_alive(repo: Repository, lock_key: str) -> bool:
    return any(h.key == lock_key and not h.is_stale() for h in list_locks(repo.backend))


def reserve(repo: Repository, series: str, lock_key: str) -> None:
    """Step 1: make this writer (holding the lock ``lock_key``) the only
    one committing to ``series`` until its record replaces the reservation.

    Waits while another live writer holds it: that writer is between its
    own step 2 and 4, which take as long as writing a night's index.  A
    writer that dies releases its lock (or it goes stale), and with it the
    reservation.
    """
    delay = 0.02
    while True:
        head = publish_last(repo, series)
        if head.reserved == lock_key:
            return
        if head.reserved is not None and _holder_alive(repo, head.reserved):
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            continue
        ref = _encode_head(head.newest, head.last, lock_key)
        if repo.backend.compare_and_swap(head_key(series), head.raw, ref):
            return


def publish_last(repo: Repository, series: str) -> _Head:
    """Write the snapshot file of the series' last commit if it is missing
    (its writer died after the swap); return the head as read."""
    head = _read_head(repo, series)
    _publish(repo, head)
    return head


def _publish(repo: Repository, head: _Head) -> bool:
    """Write the file of the record ``head`` holds if it is missing, or
    journal it if the caller's catalog lacks it; whether it did either
    (then the caller's catalog must sync to see it).  A damaged ref stops
    the command: what its record was cannot be known, and guessing could
    publish a phantom snapshot or lose a dead writer's commit."""
    if head.damaged:
        raise CorruptionError(
            f"{head.key} is damaged: {head.damaged} (`coursevault repair refs` rewrites it)"
        )
    if head.last is None:
        return False
    snap_id = object_id(ObjectType.SNAPSHOT, head.last).hex()
    if repo.backend.exists(repo.record_key(snap_id)):
        # killed between its file and its journal entry?  Journal it again
        # (a second entry for one file is harmless; a missing one hides it)
        if repo.catalog.has_snapshot(snap_id):
            return False
        journal_files(repo, added=[(SNAPSHOT, snap_id)])
        return True
    repo.backend.write(repo.record_key(snap_id), head.last)
    journal_files(repo, added=[(SNAPSHOT, snap_id)])
    return True


def publish_all(repo: Repository) -> bool:
    """Publish every series' last commit (under the exclusive lock, before
    prune or forget decide what snapshots there are); whether any was
    missing (then the caller's catalog lacks it).  A damaged ref is passed
    over: its record cannot be published, ``check`` reports it and its
    course's writers refuse it until ``repair refs``."""
    published = False
    for key, _size in list(repo.backend.list("refs/heads/")):
        head = _read_head_key(repo, key)
        if not head.damaged:
            published |= _publish(repo, head)
    return published


def committed_last(repo: Repository, names: set[str]) -> set[str]:
    """Those of ``names`` (snapshot ids) that a head holds as the record its
    writer committed last: a writer killed between the snapshot's file and
    its journal entry leaves such a file, which that course's next writer
    (or prune's and forget's ``publish_all``) journals again."""
    held = set()
    for key, _size in repo.backend.list("refs/heads/"):
        last = _read_head_key(repo, key).last
        if last is not None:
            held.add(object_id(ObjectType.SNAPSHOT, last).hex())
    return names & held


def record_snapshot(repo: Repository, draft: SnapshotDraft, lock_key: str) -> str:
    """Steps 3 and 4 (see the module docstring) for a writer holding the lock
    ``lock_key``; returns the snapshot id.  The objects the record names must
    be indexed already."""

    series = draft.series
    for _attempt in range(MAX_ATTEMPTS):
        reserve(repo, series, lock_key)
        head = _read_head(repo, series)
        if head.reserved != lock_key:
            continue  # taken over since (our lock looked stale): again
        repo.sync_catalog()
        rows = repo.snapshots(series)
        record = draft.build(parent_of(rows, draft.epoch))
        tie = tie_rank(rows, draft.epoch)
        if tie:
            record["tie"] = tie
        data = encode_record(record)
        snap_id = object_id(ObjectType.SNAPSHOT, data).hex()
        try:
            row = snapshot_row(snap_id, record)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"invalid snapshot record: {exc}") from exc
        if row.series != series or row.epoch != draft.epoch:
            raise BadInputError("a snapshot draft changed its series or time")
        newest = history_order(sorted([*rows, row], key=lambda r: (r.epoch, r.id)))[-1].id
        ref = _encode_head(newest, data, None)
        if repo.backend.compare_and_swap(head_key(series), head.raw, ref):
            try:
                repo.backend.write(repo.record_key(snap_id), data)
            except (BackendError, OSError) as exc:  # committed all the same: say so
                raise SnapshotFileError(snap_id, series, exc) from exc
            journal_files(repo, added=[(SNAPSHOT, snap_id)])  # durable first
            repo.catalog.add_snapshot(row)
            repo.catalog.set_ref(f"heads/{series}", newest)
            return snap_id
    raise BackendError(f"could not update {head_key(series)}: too many concurrent updates")


def drop_from_head(repo: Repository, series: str, snap_id: str) -> None:
    """Before ``snap_id`` is deleted (forget, under the exclusive lock): the
    ref must not name it, or the next writer would publish it again -- so
    not after, or a forget killed in between would bring it back."""
    head = _read_head(repo, series)
    if head.raw is None:
        return
    last = head.last
    if last is not None and object_id(ObjectType.SNAPSHOT, last).hex() == snap_id:
        last = None
    if head.newest != snap_id and last is head.last:
        return
    rows = [r for r in repo.snapshots(series) if r.id != snap_id]
    if not rows and last is None:
        repo.backend.delete(head_key(series))
        return
    newest = rows[-1].id if rows else None
    # no writer commits under the exclusive lock: a reservation is a dead one's
    if not repo.backend.compare_and_swap(
        head_key(series), head.raw, _encode_head(newest, last, None)
    ):
        raise BackendError(f"{head_key(series)} changed under the exclusive lock")
    if newest is not None:
        repo.catalog.set_ref(f"heads/{series}", newest)


def publish_copied(
    repo: Repository, series: str, lock_key: str, snapshots: list[tuple[str, bytes]]
) -> int:
    """Publish snapshot files copied from another repository (``sync``) into
    ``series`` for the writer holding ``lock_key``; how many were new.

    Their records are kept as they are -- their ids are their bytes' hash,
    the same at every site -- so their parents are what the source chose.
    Their objects must be indexed already.  Under the series' reservation
    (step 1), as a commit: no local writer lists the series between the
    files appearing and the ref naming the newest, so none takes a parent
    that misses them.  Never overwrites: a file already there is left.
    """
    written = 0
    for _attempt in range(MAX_ATTEMPTS):
        reserve(repo, series, lock_key)
        for snap_id, data in snapshots:
            if repo.backend.create(repo.record_key(snap_id), data):
                written += 1
        # durable first, then journaled (every one: a killed sync may have
        # left a file without its entry), before the ref names any of them;
        # and only then in this catalog: a row the journal lacked made a
        # sync killed in between take the snapshot for copied, for good
        journal_files(repo, added=[(SNAPSHOT, snap_id) for snap_id, _data in snapshots])
        for snap_id, data in snapshots:
            repo.catalog.add_snapshot(snapshot_row(snap_id, json.loads(data)))
        head = _read_head(repo, series)
        if head.reserved != lock_key:
            continue  # taken over (our lock looked stale): the files stay, again
        rows = repo.snapshots(series)
        newest = rows[-1].id if rows else head.newest
        ref = _encode_head(newest, head.last, None)
        if repo.backend.compare_and_swap(head_key(series), head.raw, ref):
            if newest is not None:
                repo.catalog.set_ref(f"heads/{series}", newest)
            return written
    raise BackendError(f"could not update {head_key(series)}: too many concurrent updates")
