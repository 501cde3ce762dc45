"""What a sync copies, copied: source packs and blocks into the destination.

Part of ``sync`` (``replicate.py``; ``syncplan.py`` plans what crosses).
Units are read in plan order -- a whole source pack when every one of its
blocks is planned (a first sync: the pack crosses byte for byte, under its
own name), else spans of neighbouring planned blocks -- and each object is
hashed against its id before anything is written.  With ``jobs`` > 1,
reads run ahead of the verification and pack writes behind it in a pool
of threads, so a remote side's latency overlaps the hashing; what is
indexed, and when, does not change (docs/format.md, "Sync").
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import blake3

from coursevault.errors import (
    ChecksumMismatchError,
    CorruptionError,
    CoursevaultError,
    ObjectMissingError,
)
from coursevault.store.catalog_sync import journal_files
from coursevault.store.diskcache import DiskCache, read_checked
from coursevault.store.ids import ObjectId, object_id
from coursevault.store.index import MAX_ENTRIES_PER_FILE, Row, encode_index_rows, index_key
from coursevault.store.journal import INDEX
from coursevault.store.locks import Lock
from coursevault.store.pack import (
    CODEC_ZSTD_DICT,
    MAX_PACK_OBJECTS,
    PACK_HEADER,
    PACK_VERSION_DICT,
    PackFormatError,
    PackWriter,
    block_dictionary,
    iter_blocks,
    pack_key,
)
from coursevault.store.repository import Repository
from coursevault.store.syncplan import SyncPlan
from coursevault.store.wrappers import BackendWrapper

# Neighbouring blocks of one pack are read in one request up to this much.
READ_SPAN = 8 * 1024 * 1024

Progress = Callable[[int, int], None]
BlockKey = tuple[bytes, int]  # (pack, block offset) at the source
# a unit read at once: (pack, offset, length, the planned blocks in it, whole pack?)
Unit = tuple[bytes, int, int, list[tuple[BlockKey, list[ObjectId]]], bool]


def prefetch_packs(src: Repository, sizes: dict[bytes, int], jobs: int) -> int:
    """Read every pack of a remote source whole, ``jobs`` at a time, into its
    disk cache -- when it has one that holds them twice over -- before a
    first sync walks it: the walk's block reads and the copy's pack reads are
    then local, where each was a request in turn.  Returns the packs read.
    The cache is only a cache: every object is still hashed by the copy."""
    cache: object = src.backend
    while not isinstance(cache, DiskCache) and isinstance(cache, BackendWrapper):
        cache = cache.inner
    if not isinstance(cache, DiskCache) or sum(sizes.values()) * 2 > cache.capacity:
        return 0

    def fetch(pack: bytes) -> None:
        # gone since it was listed: the copy says so if it is needed
        with contextlib.suppress(FileNotFoundError):
            src.backend.read(pack_key(pack))

    with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="sync-prefetch") as pool:
        for done in [pool.submit(fetch, pack) for pack in sizes]:
            done.result()
    return len(sizes)


class CopyReport(Protocol):
    """The counters of ``replicate.SyncReport`` the copy adds to."""

    bytes: int
    bytes_read: int
    objects: int
    blocks_copied: int
    objects_repacked: int
    packs: int
    packs_resumed: int
    packs_whole: int
    index_files: int


class Copier:
    """Copies a plan's objects and indexes them in plan order."""

    def __init__(
        self,
        plan: SyncPlan,
        dst: Repository | None,
        config: dict[str, Any],
        report: CopyReport,
        *,
        dry_run: bool,
        progress: Progress | None,
        locks: list[Lock],
        jobs: int = 1,
        pack_sizes: dict[bytes, int] | None = None,
    ) -> None:
        self.plan = plan
        self.src = plan.src
        self.dst = dst
        self.report = report
        self.dry_run = dry_run
        self.progress = progress
        self.locks = locks
        self.jobs = max(1, jobs)
        # sizes of the source's packs (a listing), where a whole pack may cross
        self.pack_sizes = pack_sizes or {}
        self.pack_size = int(config["pack_size"])
        self.block_size = int(config["block_size"])
        self.level = int(config["zstd_level"])
        self.rank = {oid: i for i, oid in enumerate(plan.order)}
        self.rows: list[Row | None] = [None] * len(plan.order)
        self.written = 0  # rows[:written] are all in written packs
        self.frontier = 0  # and rows[:frontier] indexed
        self.verbatim = bytearray(PACK_HEADER)
        self.verbatim_objects: list[tuple[ObjectId, int, int, int, int, int]] = []
        self.repack = PackWriter(self.block_size, self.level)
        self.dict_ready: dict[ObjectId, bool] = {}
        self.pool: ThreadPoolExecutor | None = None
        # pack writes in flight: (done?, rows it indexes, bytes)
        self.writes: deque[tuple[Future[bool], list[Row], int]] = deque()

    # -- the copy ----------------------------------------------------------------------
    def run(self) -> None:
        blocks: dict[BlockKey, list[ObjectId]] = {}
        for oid in self.plan.order:  # in plan order: a block comes where its first object is
            loc = self.plan.locs[oid]
            blocks.setdefault((loc.pack, loc.block_offset), []).append(oid)
        total = sum(self.plan.locs[oids[0]].block_length for oids in blocks.values())
        units = self._units(blocks)
        done = 0
        if self.jobs > 1:
            self.pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="sync")
        try:
            for unit, data in self._read_ahead(units):
                done += self._unit(unit, data)
                if self.progress is not None:
                    self.progress(done, total)
                for lock in self.locks:
                    lock.refresh()
            self._flush()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
        if self.frontier != len(self.rows):
            raise CorruptionError("sync planned objects it did not copy (a bug): nothing published")

    def _units(self, blocks: dict[BlockKey, list[ObjectId]]) -> list[Unit]:
        """What to read, in plan order: a source pack whose every block is
        planned is read whole where its first block comes; other blocks in
        spans of neighbours of one pack, up to READ_SPAN."""
        locs = self.plan.locs
        by_pack: dict[bytes, list[BlockKey]] = {}
        for key in blocks:
            by_pack.setdefault(key[0], []).append(key)
        whole: set[bytes] = set()
        for pack, keys in by_pack.items():
            size = self.pack_sizes.get(pack)
            pos = len(PACK_HEADER)
            for key in sorted(keys, key=lambda k: k[1]):
                if key[1] != pos:
                    break
                pos += locs[blocks[key][0]].block_length
            else:
                if size == pos:
                    whole.add(pack)
        units: list[Unit] = []
        for key, oids in blocks.items():
            pack, boff = key
            blen = locs[oids[0]].block_length
            if pack in whole:
                if key == by_pack[pack][0]:  # its first block in plan order
                    members = sorted(((k, blocks[k]) for k in by_pack[pack]), key=lambda b: b[0][1])
                    units.append((pack, 0, self.pack_sizes[pack], members, True))
                continue
            if units:
                upack, first, length, members, is_whole = units[-1]
                joins = not is_whole and upack == pack and first + length == boff
                if joins and length + blen <= READ_SPAN:
                    units[-1] = (pack, first, length + blen, [*members, (key, oids)], False)
                    continue
            units.append((pack, boff, blen, [(key, oids)], False))
        return units

    def _read_ahead(self, units: list[Unit]) -> Iterator[tuple[Unit, bytes]]:
        """Each unit with its bytes, in order; up to ``jobs`` reads ahead."""
        if self.pool is None:
            for unit in units:
                yield unit, self._read(unit)
            return
        pending: deque[tuple[Unit, Future[bytes]]] = deque()
        it = iter(units)
        for unit in it:
            pending.append((unit, self.pool.submit(self._read, unit)))
            if len(pending) >= self.jobs:
                break
        while pending:
            unit, future = pending.popleft()
            data = future.result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, self.pool.submit(self._read, nxt)))
            yield unit, data

    def _read(self, unit: Unit) -> bytes:
        pack, offset, length, _members, is_whole = unit
        try:
            if is_whole:
                data = read_checked(self.src.backend, pack_key(pack),
                                    lambda d: blake3.blake3(d).digest() == pack)
            else:
                data = self.src.backend.read(pack_key(pack), offset, length)
        except FileNotFoundError:
            raise ObjectMissingError("", f"pack {pack.hex()} is missing at the source") from None
        return data

    def _unit(self, unit: Unit, data: bytes) -> int:
        """Verify and place one unit's blocks; the bytes of blocks done."""
        pack, first, _length, members, is_whole = unit
        self.report.bytes_read += len(data)
        if is_whole and self._whole_pack(pack, data, members):
            return len(data) - len(PACK_HEADER)
        done = 0
        for (_pack, boff), oids in members:
            blen = self.plan.locs[oids[0]].block_length
            self._block(data[boff - first : boff - first + blen], oids)
            done += blen
        return done

    # -- verifying ---------------------------------------------------------------------
    def _verify(
        self, block: bytes, oids: list[ObjectId]
    ) -> tuple[bytes, list[tuple[int, int, int]], list[ObjectId]]:
        """Hash the planned objects of one source block against their ids:
        (raw content, table of contents, the id of each entry or b"" for an
        entry not planned)."""
        locs = self.plan.locs
        pack = locs[oids[0]].pack
        try:
            raw, entries = self.src.block_reader.decode(block)
        except PackFormatError as exc:
            raise CorruptionError(f"pack {pack.hex()} at the source: {exc}") from exc
        for oid in oids:
            loc = locs[oid]
            if object_id(loc.type, raw[loc.offset : loc.offset + loc.length]) != oid:
                raise ChecksumMismatchError(
                    oid.hex(), pack.hex(), "at the source; nothing that names it was copied"
                )
        by_slice = {(locs[oid].offset, locs[oid].length, int(locs[oid].type)): oid for oid in oids}
        ids = [by_slice.get((off, ln, t), b"") for t, off, ln in entries]
        if len(by_slice) != len(oids):
            ids = [b""] * len(entries)  # two planned objects at one slice: never whole
        return raw, entries, ids

    def _is_whole(
        self, block: bytes, entries: list[tuple[int, int, int]], ids: list[bytes]
    ) -> bool:
        """May this block cross as it is?  When every entry is a planned
        object, verified at its slice -- so the entries' slices are exactly
        the planned ones -- and a codec-2 block's dictionary is ready."""
        if not all(ids) or not entries:
            return False
        if block[1] == CODEC_ZSTD_DICT:
            dict_id = block_dictionary(block)
            return dict_id is not None and self._dictionary_ready(dict_id)
        return True

    def _whole_pack(
        self, pack: bytes, data: bytes, members: list[tuple[BlockKey, list[ObjectId]]]
    ) -> bool:
        """Copy a source pack byte for byte, under its own name, when its
        blocks are exactly the planned ones, each whole and verified, and its
        bytes hash to its name; else False (its blocks go one by one)."""
        try:
            found = list(iter_blocks(data))
        except PackFormatError:
            return False
        planned = {key[1]: oids for key, oids in members}
        if [b for b, _l in found] != sorted(planned) or blake3.blake3(data).digest() != pack:
            return False
        rows: list[Row] = []
        for boff, blen in found:
            block = data[boff : boff + blen]
            _raw, entries, ids = self._verify(block, planned[boff])
            if len(ids) != len(planned[boff]) or not self._is_whole(block, entries, ids):
                return False
            for oid, (t, off, ln) in zip(ids, entries, strict=True):
                rows.append((oid, t, pack, boff, blen, off, ln))
        self.report.blocks_copied += len(found)
        self.report.packs_whole += 1
        self._write_pack(pack, data, rows)
        return True

    def _block(self, block: bytes, oids: list[ObjectId]) -> None:
        """Verify the planned objects of one source block, then copy the block
        whole or its planned objects repacked."""
        locs = self.plan.locs
        raw, entries, ids = self._verify(block, oids)
        if len(entries) == len(oids) and self._is_whole(block, entries, ids):
            self._add_block(block, entries, ids)
            return
        for oid in oids:
            loc = locs[oid]
            self.repack.add(loc.type, oid, raw[loc.offset : loc.offset + loc.length])
            self.report.objects_repacked += 1
            if self.repack.size >= self.pack_size or len(self.repack.where) >= MAX_PACK_OBJECTS:
                self._flush_repack()

    def _add_block(
        self, block: bytes, entries: list[tuple[int, int, int]], ids: list[ObjectId]
    ) -> None:
        if len(self.verbatim) > len(PACK_HEADER) and (
            len(self.verbatim) + len(block) > self.pack_size
            or len(self.verbatim_objects) + len(ids) > MAX_PACK_OBJECTS
        ):
            self._flush_verbatim()
        boff = len(self.verbatim)
        self.verbatim += block
        if block[1] == CODEC_ZSTD_DICT:
            self.verbatim[4] = PACK_VERSION_DICT
        for oid, (t, off, ln) in zip(ids, entries, strict=True):
            self.verbatim_objects.append((oid, t, boff, len(block), off, ln))
        self.report.blocks_copied += 1

    # -- dictionaries ------------------------------------------------------------------
    def _dictionary_ready(self, dict_id: ObjectId) -> bool:
        """May a block compressed against ``dict_id`` cross as it is?  Only
        if the dictionary is indexed at the destination with all it reads
        (copied earlier in this plan, or there before) and its content reads
        the same there: a walk dictionary's content depends on which trees
        the repository indexes."""
        known = self.dict_ready.get(dict_id)
        if known is not None:
            return known
        rank = self.rank.get(dict_id)
        if rank is not None and self.frontier <= rank:
            self._flush()  # written and indexed now, if all before it was copied
            if self.frontier <= rank:
                return False  # not yet; a later block may find it ready
        if rank is None and (self.dst is None or not self.dst.catalog.has(dict_id)):
            ready = False
        elif self.dry_run or self.dst is None or self.plan.exact.get(dict_id, False):
            ready = True  # indexed there with what it reads, which reads the same
        else:
            try:
                here = blake3.blake3(self.src.dictionary(dict_id)[1]).digest()
                there = blake3.blake3(self.dst.dictionary(dict_id)[1]).digest()
                ready = here == there
            except CoursevaultError:
                ready = False
        self.dict_ready[dict_id] = ready
        return ready

    # -- writing -----------------------------------------------------------------------
    def _flush(self) -> None:
        """Write what is assembled and wait for every write: the frontier
        then stands past everything copied so far."""
        self._flush_verbatim()
        self._flush_repack()
        self._collect(keep=0)
        self._advance(final=True)

    def _flush_verbatim(self) -> None:
        if not self.verbatim_objects:
            return
        data = bytes(self.verbatim)
        pack_id = blake3.blake3(data).digest()
        placed = [(oid, t, pack_id, b, bl, o, ln) for oid, t, b, bl, o, ln in self.verbatim_objects]
        self.verbatim = bytearray(PACK_HEADER)
        self.verbatim_objects = []
        self._write_pack(pack_id, data, placed)

    def _flush_repack(self) -> None:
        if self.repack.empty:
            return
        pack_id, view = self.repack.finish()
        data = bytes(view)
        placed = [(oid, t, pack_id, b, bl, o, ln) for t, oid, b, bl, o, ln in self.repack.placed]
        self.repack = PackWriter(self.block_size, self.level)
        self._write_pack(pack_id, data, placed)

    def _store(self, key: str, data: bytes) -> bool:
        """Write a pack unless it is there already (a killed sync wrote it,
        or it is the source's own pack copied before): True if it was."""
        assert self.dst is not None
        if self.dst.backend.exists(key):
            return True
        self.dst.backend.create(key, data)
        return False

    def _write_pack(self, pack_id: bytes, data: bytes, placed: list[Row]) -> None:
        """Write a pack (in the pool, if any), then index the longest run of
        the plan that is all written."""
        self.report.packs += 1
        if self.dst is None or self.dry_run:
            self._written(False, placed, len(data))
            self._advance()
            return
        key = pack_key(pack_id)
        if self.pool is None:
            self._written(self._store(key, data), placed, len(data))
            self._advance()
            return
        self.writes.append((self.pool.submit(self._store, key, data), placed, len(data)))
        self._collect(keep=self.jobs)

    def _collect(self, keep: int) -> None:
        """Take the pack writes that are done, waiting for the oldest while
        more than ``keep`` are in flight, and index what they complete; a
        failed write fails the sync here."""
        advanced = False
        while self.writes and (len(self.writes) > keep or self.writes[0][0].done()):
            future, placed, size = self.writes.popleft()
            self._written(future.result(), placed, size)
            advanced = True
        if advanced:
            self._advance()

    def _written(self, resumed: bool, placed: list[Row], size: int) -> None:
        if resumed:
            self.report.packs_resumed += 1
        else:
            self.report.objects += len(placed)
            self.report.bytes += size
        for row in placed:
            self.rows[self.rank[row[0]]] = row

    def _advance(self, final: bool = False) -> None:
        """Index the objects of the plan's written prefix: everything an
        indexed tree names is indexed before it, or a rerun after a kill
        would take a tree for complete that is not.  Full index files as
        the prefix grows, the rest when ``final`` (a flush): a first sync
        of many small packs would otherwise write an index file for each."""
        rows = self.rows
        while self.written < len(rows) and rows[self.written] is not None:
            self.written += 1
        while self.frontier < self.written:
            end = min(self.frontier + MAX_ENTRIES_PER_FILE, self.written)
            if end - self.frontier < MAX_ENTRIES_PER_FILE and not final:
                return
            chunk = [r for r in rows[self.frontier : end] if r is not None]
            idx_id, data = encode_index_rows(chunk)
            self.report.index_files += 1
            self.report.bytes += len(data)
            if self.dst is not None and not self.dry_run:
                self.dst.backend.create(index_key(idx_id), data)
                # journaled once durable (again after a kill between the two:
                # an entry twice is harmless), so DST's other catalogs see it
                journal_files(self.dst, added=[(INDEX, idx_id.hex())])
                self.dst.catalog.add_index_rows(idx_id.hex(), chunk)
            self.frontier = end
