"""Prune: remove what no snapshot reaches, repack packs that are mostly garbage.

Holds the exclusive lock (no writer can be adding objects meanwhile) and works
in an order that is safe to kill at any point:

1. find every object reachable from the remaining snapshots;
2. copy the reachable objects of mostly-garbage packs into new packs;
3. write new index files naming every reachable object where it now lives;
4. delete the old index files;
5. delete packs nothing needs any more (and temporary leftovers).

Until step 4 the old index still names only packs that exist; after step 3 the
new index alone is complete.  So a crash leaves a readable repository with at
most extra index entries or unreferenced packs, and a rerun finishes the job.
Nothing still referenced is ever deleted.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from coursevault.errors import CorruptionError, ObjectMissingError
from coursevault.store.backend import Backend
from coursevault.store.catalog_sync import (
    checkpoint_from_listing,
    index_names,
    journal_files,
)
from coursevault.store.consolidate import MERGE_MIN, SMALL_SHARE, merge_blocks, small_packs
from coursevault.store.ids import ObjectId
from coursevault.store.index import MAX_ENTRIES_PER_FILE, Row, encode_index_rows, index_key
from coursevault.store.journal import INDEX
from coursevault.store.objecttable import ObjectTable
from coursevault.store.pack import (
    LARGE_OBJECT,
    MAX_PACK_OBJECTS,
    Location,
    PackWriter,
    pack_files,
    pack_key,
)
from coursevault.store.reach import Reach, walk_order
from coursevault.store.repository import Repository
from coursevault.store.scratch import Scratch
from coursevault.store.snapshots import snapshot_dictionary
from coursevault.store.spool import pack_spill, write_spool


@dataclass
class PruneReport:
    snapshots: int = 0
    reachable_objects: int = 0
    packs_before: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_merged: int = 0  # small packs whose blocks were copied whole into bigger ones
    packs_written: int = 0
    index_files_written: int = 0
    index_files_deleted: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    dry_run: bool = False

    @property
    def bytes_freed(self) -> int:
        return self.bytes_before - self.bytes_after

    def as_dict(self) -> dict[str, int | bool]:
        d: dict[str, int | bool] = dict(self.__dict__)
        d["bytes_freed"] = self.bytes_freed
        return d


def prune_repository(
    repo: Repository,
    *,
    repack_below: float = 0.5,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
    merge_min: int = MERGE_MIN,
) -> PruneReport:
    """Prune under the exclusive lock; see the module docstring for the
    guarantees.  ``merge_min``: merge small packs once there are that many
    (consolidate.py; 0 never)."""
    with repo.lock(exclusive=True, operation="prune"):
        say = progress or (lambda _msg: None)
        report = _prune(repo, repack_below, dry_run, say, merge_min)
        if not dry_run:  # compacts the journal (and starts one in an older repository)
            checkpoint_from_listing(repo)
            repo.sync_catalog()
        return report


def _classify(
    table: ObjectTable, pack_sizes: dict[str, int], repack_below: float
) -> tuple[set[str], set[str], set[str], dict[str, int], dict[int, float]]:
    """(keep, repack, delete, survivors, ratios): packs by the share of their
    object bytes still needed (rows marked KEPT), for each pack to repack about
    how many of its stored bytes the copied objects take (that share of it),
    and for each pack number its stored bytes per object byte."""
    used_no = [0] * table.pack_count
    total_no = [0] * table.pack_count
    marks = table.marks
    for row, (_oid, _t, no, _boff, _blen, _off, ln) in enumerate(table.entries()):
        total_no[no] += ln
        if marks[row] & KEPT:
            used_no[no] += ln
    total = {table.pack(no).hex(): n for no, n in enumerate(total_no)}
    used = {table.pack(no).hex(): n for no, n in enumerate(used_no) if n}
    keep = {p for p in pack_sizes if p in total and used.get(p, 0) >= repack_below * total[p]}
    repack = {p for p in pack_sizes if p in total and p not in keep and used.get(p, 0) > 0}
    survivors = {p: pack_sizes[p] * used[p] // total[p] for p in repack}
    ratios = {no: pack_sizes.get(table.pack(no).hex(), n) / n for no, n in enumerate(total_no) if n}
    return keep, repack, set(pack_sizes) - keep, survivors, ratios


def _packs_to_write(
    table: ObjectTable, to_copy: list[int], ratios: dict[int, float], block: int, pack: int
) -> int:
    """How many packs copying ``to_copy`` (rows, in copy order) writes, for a
    dry run: PackWriter's rules -- a block sealed when the next object would
    overflow it or is large, a pack flushed once its sealed blocks plus the
    open block's raw bytes reach ``pack`` or it holds MAX_PACK_OBJECTS -- with
    each object stored at its old pack's ratio.  "4 repacked into 0" was what
    a dry run said where prune then wrote 1."""
    packs = objects = raw = 0
    sealed = open_stored = 0.0
    large_from = min(block, LARGE_OBJECT)
    for row in to_copy:
        n = table.length(row)
        large = n >= large_from
        if raw and (large or raw + n > block):
            sealed, raw, open_stored = sealed + open_stored, 0, 0.0
        raw += n
        open_stored += n * ratios.get(table.pack_number(row), 1.0)
        objects += 1
        if large or raw >= block:
            sealed, raw, open_stored = sealed + open_stored, 0, 0.0
        if sealed + raw >= pack or objects >= MAX_PACK_OBJECTS:
            packs += 1
            objects = raw = 0
            sealed = open_stored = 0.0
    return packs + (1 if objects else 0)


def _index_size(rows: Iterable[Row]) -> int:
    """Bytes of the index files ``rows`` make (what a dry run says they would take)."""
    size = 0
    rest = iter(rows)
    while chunk := list(itertools.islice(rest, MAX_ENTRIES_PER_FILE)):
        size += len(encode_index_rows(chunk)[1])
    return size


# marks on ObjectTable rows
REACHED = 1  # the object and all it names are kept
CONTENT = 2  # the object is kept (a dictionary reads it), not what it names
CHECKED = 4  # the dictionaries its blocks name are kept
KEPT = REACHED | CONTENT


def _prune(
    repo: Repository,
    repack_below: float,
    dry_run: bool,
    say: Callable[[str], None],
    merge_min: int,
) -> PruneReport:
    backend = repo.backend
    report = PruneReport(dry_run=dry_run)
    repo.sync_catalog()

    # index: every location of every object
    old_index = index_names(backend, repo.notice)
    table = ObjectTable(entry for name in old_index for entry in _index_entries(repo, name))
    pack_sizes = dict(pack_files(backend, lambda key: repo.notice(
        f"ignoring {key}: not a pack file (a stray file; remove it by hand)")))
    report.packs_before = len(pack_sizes)
    report.bytes_before = sum(pack_sizes.values()) + sum(s for _, s in backend.list("index/"))

    # 1. reachable objects
    say("finding reachable objects")
    _mark_reachable(repo, table, report)

    # 2. classify packs by the share of their object bytes still needed
    plan = _Plan(table, pack_sizes, repack_below, int(repo.config["pack_size"]), merge_min)
    report.packs_repacked = len(plan.repack)
    report.packs_merged = len(plan.merge)
    report.packs_deleted = len(plan.delete)
    report.reachable_objects = plan.reachable

    # Nothing to delete or copy, every index entry an object kept once, and
    # not many more index files than their entries need: the index stays as
    # it is (rewriting it would only change its size).
    needed = -(-plan.reachable // MAX_ENTRIES_PER_FILE)
    few_files = not merge_min or len(old_index) < merge_min or len(old_index) <= 2 * needed
    unchanged = not plan.delete and not plan.to_copy and len(table) == plan.reachable and few_files
    if unchanged or dry_run:
        report.bytes_after = report.bytes_before
        if not unchanged:
            _estimate(repo, plan, report)
        if not dry_run:
            _remove_temporary(backend)
        return report

    # 3. copy the survivors of repacked packs
    say(f"repacking {len(plan.to_copy)} objects from {len(plan.repack)} packs")
    copied = _copy(repo, table, sorted(plan.to_copy, key=table.place), report)
    if plan.to_merge:
        say(f"merging {len(plan.merge)} small packs")

        def merged() -> None:
            report.packs_written += 1

        pack_size = int(repo.config["pack_size"])
        copied += merge_blocks(repo, table, plan.to_merge, pack_size, merged)

    # 4. the new index, then away with the old
    say("writing the new index")
    entries = plan.index_after(copied)
    new_index: set[str] = set()
    while chunk := list(itertools.islice(entries, MAX_ENTRIES_PER_FILE)):
        idx_id, data = encode_index_rows(chunk)
        backend.write(index_key(idx_id), data)
        new_index.add(idx_id.hex())
    report.index_files_written = len(new_index)
    # journaled before the old files go, so no catalog keeps their locations
    journal_files(
        repo,
        added=[(INDEX, n) for n in sorted(new_index - set(old_index))],
        removed=[(INDEX, n) for n in old_index if n not in new_index],
    )
    for name in old_index:
        if name not in new_index:
            backend.delete(f"index/{name}")
            report.index_files_deleted += 1

    # 5. packs and leftovers nothing needs.  A pack id is its content's hash,
    # so a prune killed after step 3 left, unindexed, the very packs this one
    # wrote again: they were among the unreferenced packs to delete.
    written = {row[2].hex() for row in copied}
    delete = [name for name in plan.delete if name not in written]
    report.packs_deleted = len(delete)
    say(f"deleting {len(delete)} packs")
    for name in delete:
        backend.delete(pack_key(bytes.fromhex(name)))
    _remove_temporary(backend)

    # The journal names what changed (the index files), so the catalog
    # reloads the index and keeps its snapshot rows: a rebuild read every
    # snapshot record again.
    repo.sync_catalog()
    report.bytes_after = sum(s for _, s in pack_files(backend)) + sum(
        s for _, s in backend.list("index/")
    )
    return report


def _mark_reachable(repo: Repository, table: ObjectTable, report: PruneReport) -> None:
    """Mark what every snapshot's root reaches (REACHED), and what the
    dictionaries they left and the dictionaries of kept blocks read (CONTENT).
    A missing object stops the prune: what it names would be deleted."""

    def missing(oid: ObjectId, needed_by: str) -> None:
        raise ObjectMissingError(
            oid.hex(), f"needed by {needed_by}; run `coursevault check` before pruning"
        )

    reach = Reach(repo, table, missing)
    with Scratch(repo.scratch_folder) as scratch:
        # series by series, oldest first: each chain of dictionaries is read
        # about once (in hash order prune grew as snapshots^1.1)
        scratch.table(
            "nights", "seq INTEGER PRIMARY KEY, snapshot TEXT, dictionary BLOB", rowid=True
        )
        nights: list[tuple[str, ObjectId]] = []
        for snap_id in walk_order(repo.backend, repo.catalog, scratch, repo.snapshot_fanout):
            if len(nights) >= 1024:
                scratch.fill("INSERT INTO nights (snapshot, dictionary) VALUES (?, ?)", nights)
                nights.clear()
            report.snapshots += 1
            record = repo.read_snapshot(snap_id)
            reach.trees([bytes.fromhex(str(record["root"]))], f"snapshot {snap_id}", REACHED)
            dictionary = snapshot_dictionary(record)
            if dictionary is not None and dictionary in table:
                nights.append((snap_id, dictionary))
        scratch.fill("INSERT INTO nights (snapshot, dictionary) VALUES (?, ?)", nights)

        # A dictionary needs its object and the objects it reads kept, not what
        # those name (a walk dictionary reads a few upper trees of a snapshot that
        # may be forgotten).  Marked after every root: REACHED means "and all it
        # names", so these get a mark of their own.
        query = "SELECT seq, snapshot, dictionary FROM nights WHERE seq > ? ORDER BY seq LIMIT ?"
        for snap_id, dict_id in scratch.batches(query, columns=2):
            needed_by = f"the dictionary of snapshot {snap_id}"
            # What a snapshot leaves for the next night restores nothing: if it is
            # damaged, the next session compresses without it (WriteSession), so
            # it is not kept rather than stopping the prune that frees the rest.
            try:
                reach.dictionary(dict_id, needed_by, CONTENT, whole=True)
            except (CorruptionError, ObjectMissingError) as exc:
                repo.notice(f"{needed_by} is damaged and is not kept: {exc}")

    # A block holding a kept object needs the dictionary it names -- in
    # every pack that holds a copy, not only the packs kept: until the old index
    # files are gone (step 4) a reader may take any copy, so a prune killed
    # midway must leave those dictionaries indexed.  Those kept only for blocks
    # repacked below are freed by the next prune (and what only they needed,
    # one level of a chain per prune).
    reach.block_dictionaries(KEPT, CHECKED, CONTENT)


class _Plan:
    """Which packs stay, which are repacked, merged (small ones, their blocks
    copied whole: consolidate.py) and deleted, and where each kept object
    will live: in a kept pack if it is in one already (``staying``), else in
    a merged one (``to_merge``), else copied (``to_copy``, the first row of
    each)."""

    def __init__(
        self,
        table: ObjectTable,
        pack_sizes: dict[str, int],
        repack_below: float,
        pack_size: int,
        merge_min: int,
    ):
        self.table = table
        self.pack_sizes = pack_sizes
        self.keep, self.repack, self.delete, self.survivors, self.ratios = _classify(
            table, pack_sizes, repack_below
        )
        self.merge = small_packs(pack_sizes, self.keep, pack_size, merge_min)
        small_size = pack_size // SMALL_SHARE
        self.keep -= self.merge
        self.delete |= self.merge
        numbers = {table.pack(no).hex(): no for no in range(table.pack_count)}
        kept_packs = {numbers[p] for p in self.keep if p in numbers}
        full_packs = {no for no in kept_packs if pack_sizes[table.pack(no).hex()] >= small_size}
        merged = {numbers[p] for p in self.merge if p in numbers}
        staying: list[int] = []  # rows, as (pack, block, offset, row) in one int
        to_merge: list[int] = []  # the same
        self.to_copy: list[int] = []
        self.reachable = 0
        marks = table.marks
        for rows in table.objects():
            if not marks[rows.start] & KEPT:
                continue
            self.reachable += 1
            # a copy in a pack of the target size first: after a prune killed
            # between its new index and the old one's removal, an object is in
            # a merged pack and in a small one still indexed
            row = next((r for r in rows if table.pack_number(r) in full_packs), -1)
            if row < 0:
                row = next((r for r in rows if table.pack_number(r) in kept_packs), -1)
            into = staying
            if row < 0:
                row = next((r for r in rows if table.pack_number(r) in merged), -1)
                into = to_merge
            if row >= 0:
                no, boff, off = table.place(row)
                into.append(no << 128 | boff << 64 | off << 32 | row)
            else:
                self.to_copy.append(rows.start)
        # in pack order: neighbouring locations compress, blocks are copied in turn
        staying.sort()
        to_merge.sort()
        self.staying = staying
        # a kept pack every object of which lives elsewhere is named by no
        # new index file: it goes too (else it stayed, unreferenced)
        used = {key >> 128 for key in staying}
        idle = {p for p in self.keep if p in numbers and numbers[p] not in used}
        self.keep -= idle
        self.delete |= idle
        mask = (1 << 32) - 1
        self.to_merge = [key & mask for key in to_merge]

    def index_after(self, copies: Iterable[Row]) -> Iterator[Row]:
        """The new index: the objects staying, in pack order, then the copies."""
        mask = (1 << 32) - 1
        table = self.table
        return itertools.chain((table.index_row(key & mask) for key in self.staying), copies)


def _estimate(repo: Repository, plan: _Plan, report: PruneReport) -> None:
    """What a dry run says the copy would write and leave: the copies' index
    rows, in their places before the copy."""
    table = plan.table
    report.packs_written = _packs_to_write(
        table,
        sorted(plan.to_copy, key=table.place),  # as copied
        plan.ratios,
        int(repo.config["block_size"]),
        int(repo.config["pack_size"]),
    )
    # merged blocks are copied whole: about their packs' bytes, in packs of the target size
    merged = sum(plan.pack_sizes[p] for p in plan.merge)
    report.packs_written += -(-merged // int(repo.config["pack_size"]))
    rows = itertools.chain(plan.to_copy, plan.to_merge)
    report.bytes_after = (
        sum(plan.pack_sizes[p] for p in plan.keep)
        + sum(plan.survivors.values())
        + merged
        + _index_size(plan.index_after(table.index_row(row) for row in rows))
    )


def _copy(
    repo: Repository, table: ObjectTable, to_copy: list[int], report: PruneReport
) -> list[Row]:
    """Copy ``to_copy`` (rows, in pack order) into new packs; their index rows."""
    backend = repo.backend
    copied: list[Row] = []
    block_size, level = int(repo.config["block_size"]), int(repo.config["zstd_level"])
    pack_size = int(repo.config["pack_size"])
    spill_at = pack_spill(pack_size)
    writer = PackWriter(block_size, level, spill_at=spill_at)

    def flush() -> None:
        nonlocal writer
        if writer.empty:
            return
        pack_id, spool = writer.finish_spool()
        try:
            write_spool(backend, pack_key(pack_id), spool)
        finally:
            spool.close()
        copied.extend((oid, t, pack_id, bo, bl, o, ln) for t, oid, bo, bl, o, ln in writer.placed)
        report.packs_written += 1
        writer = PackWriter(block_size, level, spill_at=spill_at)

    for row in to_copy:
        kind, payload = repo.read_at(table.oid(row), table.location(row))
        writer.add(kind, table.oid(row), payload)
        if writer.size >= pack_size or len(writer.where) >= MAX_PACK_OBJECTS:
            flush()
    flush()
    return copied


def _index_entries(repo: Repository, name: str) -> list[tuple[ObjectId, Location]]:
    """An index file's entries; a damaged one stops the prune, which would
    otherwise delete what only it names."""
    try:
        return repo.read_index(name)
    except CorruptionError as exc:
        raise CorruptionError(f"{exc}: run `coursevault repair index` before pruning") from exc


def _remove_temporary(backend: Backend) -> None:
    """Leftovers of writes that never finished (no writer runs: we hold the lock)."""
    for key in list(backend.list_temporary()):
        if not key.startswith("locks/"):
            backend.delete(key)
