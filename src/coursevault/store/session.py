"""A write session: objects into packs, then index files, then one snapshot.

The write order (docs/format.md, "Durability") lives here: packs are
written as they fill, index files naming every new object at commit, and
only then the snapshot file -- so a visible snapshot never references an
object that is not durable and indexed, and a session that fails cleanly
can delete its packs (their objects were never indexed, so no other writer
can have deduplicated against them).
"""

from __future__ import annotations

import itertools
import secrets
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import zstandard

from coursevault.errors import CorruptionError, ObjectMissingError
from coursevault.store.catalog_sync import journal_files
from coursevault.store.dictionaries import (
    DICT_BUDGET,
    DICT_MEMBER_MAX,
    DICT_MEMBERS,
    DICT_MIN,
    DICT_WALK,
    MAX_DICT_DEPTH,
    dictionary_body,
    dictionary_params,
)
from coursevault.store.ids import ObjectId, ObjectType, object_id
from coursevault.store.index import MAX_ENTRIES_PER_FILE, IndexTable, Row, index_key
from coursevault.store.journal import INDEX
from coursevault.store.pack import MAX_PACK_OBJECTS, Location, PackWriter, pack_key
from coursevault.store.pending import PendingIndex
from coursevault.store.series import SnapshotDraft, fixed_draft, reserve
from coursevault.store.spool import pack_spill
from coursevault.store.treecodec import encode_tree
from coursevault.store.uploads import PackUploads

if TYPE_CHECKING:
    from coursevault.store.repository import Repository

# A pack whose bytes are at least 1/REWRITE_SHARE objects another writer
# committed meanwhile is written again without them (_drop_committed_meanwhile).
REWRITE_SHARE = 4


@dataclass
class WriteStats:
    new_objects: int = 0
    new_bytes: int = 0  # uncompressed payload bytes of new objects
    stored_bytes: int = 0  # bytes of pack files written
    packs: int = 0


class WriteSession:
    """Adds objects and, on commit, one snapshot; holds a shared lock meanwhile.

    Objects are deduplicated against the repository (catalog) and against what
    this session already wrote.  Nothing becomes visible to other processes
    before :meth:`commit`; :meth:`abort` removes every pack this session wrote.
    """

    def __init__(
        self,
        repo: Repository,
        operation: str,
        dictionary: ObjectId | None = None,
    ) -> None:
        self.repo = repo
        self.session = secrets.token_hex(16)
        self._lock = repo.lock(exclusive=False, operation=operation)
        try:
            self._start(dictionary)
        except BaseException:
            # an error, or Ctrl-C / SIGTERM, before the caller holds the
            # session: nobody could abort it, and its lock stayed (one
            # SIGTERM in a few dozen, sent as the pending index appeared)
            self._abandon_start()
            raise

    def _start(self, dictionary: ObjectId | None) -> None:
        repo = self.repo
        # The catalog was synced when the repository was opened; a prune may have
        # run since (it needs the exclusive lock, so not from here on).  Dedup
        # against a stale catalog would reference deleted objects: sync again.
        repo.sync_catalog()
        # what was committed by then was deduplicated against (see _commit)
        self._index_seen = repo.catalog.index_files()
        cfg = repo.config
        self.pack_size = int(cfg["pack_size"])
        self._block_size = int(cfg["block_size"])
        self._level = int(cfg["zstd_level"])
        # a version-1 repository never gets dictionary blocks (its readers lack them)
        depth = int(cfg.get("dictionary_depth", 0)) if int(cfg["version"]) >= 2 else 0
        self._max_depth = min(depth, MAX_DICT_DEPTH)
        self._walks = int(cfg["version"]) >= 3  # walk dictionaries are format 3
        # dictionary compression: what this session compresses against, and the
        # small new objects it wrote (the next session's dictionary)
        self._dict: tuple[ObjectId, zstandard.ZstdCompressor] | None = None
        self._depth = 0  # dictionary depth of the blocks this session writes
        self._fresh: deque[tuple[ObjectId, int]] = deque()
        self._fresh_bytes = 0
        self._dict_made = False
        if dictionary is not None:
            self._use_dictionary(dictionary)
        self._pack = self._new_pack()
        self._decoded: dict[int, bytes] = {}
        self._pending = PendingIndex()
        # packs upload while the next fills (store/uploads.py); drained before
        # any index file is written and before this session reads its packs
        self._uploads = PackUploads(repo.backend, repo.pack_uploads)
        self._packs: list[bytes] = []
        self._pack_bytes: dict[bytes, int] = {}
        self._indexed = False
        self._stats = WriteStats()
        self._closed = False

    def _abandon_start(self) -> None:
        """Undo what ``_start`` made before it stopped, and free the lock."""
        made = self.__dict__
        try:
            if "_pack" in made:
                self._pack.detach()
            if "_uploads" in made:
                self._uploads.close()
            if "_pending" in made:
                self._pending.close()
        finally:
            self._lock.let_go(failing=True)
            if made.get("_dict") is not None:
                self.repo.forget_dictionary(made["_dict"][0])

    def _new_pack(self) -> PackWriter:
        pack = PackWriter(
            self._block_size,
            self._level,
            self._known,
            DICT_MEMBERS,
            spill_at=pack_spill(self.pack_size),
        )
        if self._dict is not None:
            pack.set_dictionary(*self._dict)
        return pack

    def _use_dictionary(self, dict_id: ObjectId) -> None:
        """Compress this session's blocks against ``dict_id``, if it is usable.

        A missing or damaged dictionary, or one whose chain is already the
        repository's ``dictionary_depth`` deep, only means plain compression: the backup goes on
        (and ``check`` reports damage).
        """
        repo = self.repo
        if not repo.catalog.has(dict_id):
            return
        try:
            # the reader's own: reading back and writing share one copy
            depth, zdict = repo.zstd_dictionary(dict_id)
        except (ObjectMissingError, CorruptionError):
            return
        if depth > self._max_depth or len(zdict) < DICT_MIN:
            return
        params = dictionary_params(self._level)
        zdict.precompute_compress(compression_params=params)
        self._dict = (
            dict_id,
            zstandard.ZstdCompressor(compression_params=params, dict_data=zdict),
        )
        self._depth = depth
        repo.remember_dictionary(dict_id, zdict)

    def _note_fresh(self, pack: PackWriter) -> None:
        """Remember the newest trees written (the next session's dictionary)."""
        if self._dict_made:
            return
        fresh = self._fresh
        for oid, ln in pack.recent_trees:
            if ln <= DICT_MEMBER_MAX:
                fresh.append((oid, ln))
                self._fresh_bytes += ln
        while self._fresh_bytes > DICT_BUDGET or len(fresh) > DICT_MEMBERS:
            self._fresh_bytes -= fresh.popleft()[1]

    def make_dictionary(self, walk: ObjectId | None = None) -> ObjectId | None:
        """Write a dictionary object for the next session of the same series and
        return its id (None if this session wrote too little to be worth one).

        By default its content is that of the dictionary this session used,
        followed by the newest trees this session wrote, the last DICT_BUDGET
        bytes of it: a night's new records are most like the last nights' new
        records.  It names the dictionary before it, not that one's members,
        so it costs 32 bytes per new tree, not per tree of the budget.

        ``walk`` (a tree this session wrote, e.g. the snapshot's root) asks for
        a walk dictionary instead, if this session used none: a first
        backup's newest trees are the tail of the course, which the next
        night rarely touches, while its upper trees are what that night
        rewrites, and one id names them all.  Not in a format-1 or -2
        repository, whose readers lack walk dictionaries.

        Call it before :meth:`commit`; the caller keeps the id (ingest puts it
        in the snapshot record, which is what keeps it from being pruned).
        """
        if self._dict_made:
            raise RuntimeError("make_dictionary called twice")
        if self._max_depth == 0:
            return None
        self._pack.flush_block()
        self._fold_dropped()
        self._note_fresh(self._pack)
        self._dict_made = True
        if walk is not None and self._dict is None and self._walks:
            # depth 1 is a lower bound: readers count what the walk reads
            return self.put_tree([walk], dictionary_body(1, DICT_WALK))
        if not self._fresh:  # nothing new (the same backup again): the same dictionary
            return self._dict[0] if self._dict is not None else None
        members = list(dict.fromkeys(m for m, _n in self._fresh))
        # the dictionary used comes first, unless this session's trees fill the budget
        previous = self._dict is not None and self._fresh_bytes < DICT_BUDGET
        if previous:
            assert self._dict is not None
            members.insert(0, self._dict[0])
        elif self._fresh_bytes < DICT_MIN:
            return None
        return self.put_tree(members, dictionary_body(self._depth + 1, 1 if previous else 0))

    def _known(self, oids: list[ObjectId]) -> set[ObjectId]:
        return self.repo.catalog.has_many(oids)

    @property
    def stats(self) -> WriteStats:
        """Objects and bytes this session adds (the open block is deduplicated first)."""
        if not self._closed:
            self._pack.drop_known()
            self._fold_dropped()
        return self._stats

    def _fold_dropped(self) -> None:
        pack = self._pack
        self._stats.new_objects -= pack.dropped_objects
        self._stats.new_bytes -= pack.dropped_bytes
        pack.dropped_objects = pack.dropped_bytes = 0

    # objects
    def put(self, kind: ObjectType, payload: bytes) -> ObjectId:
        """Store an object unless stored already; whether the repository has it is
        asked per block (see PackWriter), so an object may briefly sit in the
        open block before it is dropped as known."""
        oid = object_id(kind, payload)
        pack = self._pack
        if oid in pack.where or self._pending.has(oid):
            return oid
        pack.add(kind, oid, payload)
        stats = self._stats
        stats.new_objects += 1
        stats.new_bytes += len(payload)
        if pack.size >= self.pack_size or len(pack.where) >= MAX_PACK_OBJECTS:
            self._flush_pack()
        return oid

    def put_tree(self, refs: list[ObjectId], body: bytes) -> ObjectId:
        return self.put(ObjectType.TREE, encode_tree(refs, body))

    def has(self, oid: ObjectId) -> bool:
        """Was the object committed before this session?"""
        return self.repo.catalog.has(oid)

    def get(self, oid: ObjectId) -> tuple[ObjectType, bytes]:
        """Read an object, including ones this session has not committed yet."""
        found = self._pack.read(oid, self.repo._reader, self._decoded)
        if found is not None:
            return ObjectType(found[0]), found[1]
        if self._pending.count and self._pending.might_have(oid):
            loc = self._pending.lookup(oid)
            if loc is not None:
                self._uploads.drain()
                return self.repo.read_at(oid, loc)
        return self.repo.get(oid)

    def _flush_pack(self) -> None:
        """Write the open pack; its entries go to the pending index."""
        if self._pack.empty:
            return
        self._pack.flush_block()
        self._fold_dropped()
        if self._pack.empty:
            return
        pack_id, data = self._pack.finish_spool()
        size = data.size
        self._note_fresh(self._pack)
        self._packs.append(pack_id)  # first: an abort deletes it, uploaded or not
        self._uploads.write(pack_key(pack_id), data)
        self._pack_bytes[pack_id] = size
        self._stats.packs += 1
        self._stats.stored_bytes += size
        self._pending.add(pack_id, self._pack.iter_placed())
        self._pack = self._new_pack()
        self._decoded = {}
        self._lock.refresh()

    def refresh_lock(self) -> None:
        self._lock.refresh()

    # commit / abort
    def commit(self, snapshot: dict[str, Any] | SnapshotDraft | None = None) -> str | None:
        """Make everything durable and visible; write ``snapshot`` last.

        A record is written as it is; a :class:`SnapshotDraft` gets its
        parent chosen under its series' head update (``store/series.py``).
        Returns the snapshot id (or None when only objects were committed).
        On any failure the session is aborted (see :meth:`abort`) and the
        lock freed.
        """
        try:
            return self._commit(snapshot)
        except BaseException:
            self.abort()
            raise

    def _commit(self, snapshot: dict[str, Any] | SnapshotDraft | None) -> str | None:
        draft = fixed_draft(snapshot) if isinstance(snapshot, dict) else snapshot
        self._flush_pack()
        self._uploads.drain()  # packs whole in the store before any index names them
        if draft is not None:  # no snapshot of its series appears until ours
            reserve(self.repo, draft.series, self._lock.key)
        self._drop_committed_meanwhile()
        self._uploads.drain()  # and the packs that rewrote
        pending = self._pending.rows()
        written: list[str] = []
        while True:
            # packed as read: a list of a file's 32,768 rows was 8 MiB of a
            # full backup's peak (docs/benchmarks.md 9b), a course that
            # writes fewer objects never reaching it
            table = IndexTable()
            for entry in itertools.islice(pending, MAX_ENTRIES_PER_FILE):
                table.add(entry)
            if not table.count:
                break
            idx_id, data = table.encode()
            self._indexed = True  # from here on, abort must not delete packs
            self.repo.backend.write(index_key(idx_id), data)
            written.append(idx_id.hex())
            self._stats.stored_bytes += len(data)
            self.repo.catalog.add_index_table(idx_id.hex(), table, commit=False)
            del table, data
        # durable first, then journaled, then in the catalog: a kill before
        # the journal leaves index files nothing can reference (journal.py)
        if written:
            journal_files(self.repo, added=[(INDEX, name) for name in written])
        self.repo.catalog.commit()
        snap_id = self.repo.commit_snapshot(draft, self._lock) if draft is not None else None
        self._close(failing=False)
        return snap_id

    def _drop_committed_meanwhile(self) -> None:
        """Rewrite this session's packs that are mostly objects other writers
        committed since it opened.

        Why: two nights of one series ingested together each store what the
        other adds, until one commits -- then the other's objects are last
        night's, and the snapshot taking it as parent must not keep them all
        again.  Dedup asked the catalog block by block; only an index file
        committed since can make more known, so without one this costs a
        listing.  Called with the series' ref reserved (``series.reserve``):
        no snapshot of the series can be committed between this and ours.  Packs are private until indexed, so rewriting them is safe:
        the old ones are deleted, the objects kept go through :meth:`put`
        again (into new packs, compressed as before).  A pack with a few
        such objects (a file two courses share) is left alone: its copies
        cost less than rewriting it.  Memory stays flat: two passes over the
        rows, a batch at a time.
        """
        repo = self.repo
        repo.sync_catalog()  # under our shared lock: what it lists stays
        if not repo.catalog.index_files() - self._index_seen:
            return
        known_bytes: dict[bytes, int] = {}
        all_bytes: dict[bytes, int] = {}
        for part, known in self._batches_known():
            for oid, _t, pack_id, _bo, _bl, _o, ln in part:
                all_bytes[pack_id] = all_bytes.get(pack_id, 0) + ln
                if oid in known:
                    known_bytes[pack_id] = known_bytes.get(pack_id, 0) + ln
        touched = {p for p, n in known_bytes.items() if n * REWRITE_SHARE >= all_bytes[p]}
        if not touched:
            return
        old_pending, self._pending = self._pending, PendingIndex()
        try:
            self._rewrite_packs(old_pending, touched)
        finally:
            old_pending.close()
        self._flush_pack()

    def _batches_known(
        self, pending: PendingIndex | None = None
    ) -> Iterator[tuple[list[Row], set[ObjectId]]]:
        """This session's rows a batch at a time, each with its ids the catalog has."""
        rows = (pending or self._pending).rows()
        while part := list(itertools.islice(rows, 4096)):
            yield part, self.repo.catalog.has_many([r[0] for r in part])

    def _rewrite_packs(self, old: PendingIndex, touched: set[bytes]) -> None:
        repo = self.repo
        stats = self._stats
        untouched: dict[bytes, list[tuple[int, ObjectId, int, int, int, int]]] = {}
        for part, known in self._batches_known(old):
            for oid, t, pack_id, boff, blen, off, ln in part:
                if pack_id not in touched:
                    untouched.setdefault(pack_id, []).append((t, oid, boff, blen, off, ln))
                    continue
                stats.new_objects -= 1
                stats.new_bytes -= ln
                if oid not in known:
                    loc = Location(ObjectType(t), pack_id, boff, blen, off, ln)
                    self.put(ObjectType(t), repo.read_at(oid, loc)[1])
            for pack_id, placed in untouched.items():  # in pack order, as before
                self._pending.add(pack_id, placed)
            untouched.clear()
        for pack_id in touched:
            # the same objects in the same order make the same pack: another
            # writer of the same archive may have committed this very file
            if not repo.catalog.knows_pack(pack_id):
                repo.backend.delete(pack_key(pack_id))
            stats.stored_bytes -= self._pack_bytes.pop(pack_id, 0)
            stats.packs -= 1
        self._packs = [p for p in self._packs if p not in touched]
        repo.forget_packs(touched)

    def abort(self) -> None:
        """Forget this session: delete its packs, unless an index already names them.

        Packs no index names cannot have been used by anyone else.  Once commit
        has written an index file, other writers may dedup against its objects,
        so the packs stay (prune removes them if no snapshot ever uses them).
        """
        if self._closed:
            return
        try:
            self._uploads.close()  # none may land after the deletes below
            if not self._indexed:
                for pack_id in self._packs:
                    self.repo.backend.delete(pack_key(pack_id))
                self.repo.forget_packs(set(self._packs))
        finally:
            self._close(failing=True)

    def _close(self, failing: bool) -> None:
        self._closed = True
        self._pack.detach()  # no cycle left: the session goes with its last reference
        self._uploads.close()
        self._pending.close()
        self._lock.let_go(failing)
        if self._dict is not None:
            # its compression tables (4 MB for a walk's) are part of the zstd
            # dictionary the reader keeps: not for the next course's session
            self.repo.forget_dictionary(self._dict[0])

    def __enter__(self) -> WriteSession:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self._closed:
            if exc_type is None:
                self.commit()
            else:
                self.abort()
