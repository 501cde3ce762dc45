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

from collections.abc import Callable
from dataclasses import dataclass

from coursevault.errors import ObjectMissingError
from coursevault.store.ids import ObjectId, ObjectType
from coursevault.store.index import MAX_ENTRIES_PER_FILE, encode_index, index_key
from coursevault.store.pack import Location, PackWriter, pack_key
from coursevault.store.repository import MAX_PACK_OBJECTS, Repository, snapshot_dictionary
from coursevault.store.treecodec import tree_refs


@dataclass
class PruneReport:
    snapshots: int = 0
    reachable_objects: int = 0
    packs_before: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
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
) -> PruneReport:
    """Prune under the exclusive lock; see the module docstring for the guarantees."""
    with repo.lock(exclusive=True, operation="prune"):
        return _prune(repo, repack_below, dry_run, progress or (lambda _msg: None))


def _classify(
    locations: dict[ObjectId, list[Location]],
    reachable: set[ObjectId],
    pack_sizes: dict[str, int],
    repack_below: float,
) -> tuple[set[str], set[str], set[str], dict[str, int]]:
    """(keep, repack, delete, used bytes): packs by the share of their object
    bytes still needed."""
    used: dict[str, int] = {}
    total: dict[str, int] = {}
    for oid, locs in locations.items():
        for loc in locs:
            name = loc.pack.hex()
            total[name] = total.get(name, 0) + loc.length
            if oid in reachable:
                used[name] = used.get(name, 0) + loc.length
    keep = {p for p in pack_sizes if p in total and used.get(p, 0) >= repack_below * total[p]}
    repack = {p for p in pack_sizes if p in total and p not in keep and used.get(p, 0) > 0}
    return keep, repack, set(pack_sizes) - keep, used


def _prune(
    repo: Repository, repack_below: float, dry_run: bool, say: Callable[[str], None]
) -> PruneReport:
    backend = repo.backend
    report = PruneReport(dry_run=dry_run)
    repo.sync_catalog()

    # index: every location of every object
    old_index = [key.split("/", 1)[1] for key, _ in backend.list("index/")]
    locations: dict[ObjectId, list[Location]] = {}
    for name in old_index:
        for oid, loc in repo.read_index(name):
            locations.setdefault(oid, []).append(loc)
    pack_sizes = {key.rsplit("/", 1)[1]: size for key, size in backend.list("packs/")}
    report.packs_before = len(pack_sizes)
    report.bytes_before = sum(pack_sizes.values()) + sum(s for _, s in backend.list("index/"))

    # 1. reachable objects: from every snapshot's root and the dictionary it left
    say("finding reachable objects")
    reachable: set[ObjectId] = set()

    def mark(roots: list[ObjectId], needed_by: str) -> None:
        stack = list(roots)
        while stack:
            oid = stack.pop()
            if oid in reachable:
                continue
            locs = locations.get(oid)
            if not locs:
                raise ObjectMissingError(
                    oid.hex(),
                    f"needed by {needed_by}; run `coursevault check` before pruning",
                )
            reachable.add(oid)
            if locs[0].type == ObjectType.TREE:
                _t, payload = repo.read_at(oid, locs[0])
                stack.extend(tree_refs(payload))

    snaps = [key.split("/", 1)[1] for key, _ in backend.list("snapshots/")]
    report.snapshots = len(snaps)
    dictionaries: list[tuple[ObjectId, str]] = []
    for snap_id in snaps:
        record = repo.read_snapshot(snap_id)
        mark([bytes.fromhex(str(record["root"]))], f"snapshot {snap_id}")
        dictionary = snapshot_dictionary(record)
        if dictionary is not None and dictionary in locations:
            dictionaries.append((dictionary, f"the dictionary of snapshot {snap_id}"))

    # A dictionary needs its object and the objects it reads kept, not what
    # those name (a walk dictionary reads a few upper trees of a snapshot that
    # may be forgotten).  Marked after every root: ``reachable`` means "and
    # all it names", so these go to a set of their own.
    content: set[ObjectId] = set()
    marked_dicts: set[ObjectId] = set()

    def keep_content(oid: ObjectId, needed_by: str) -> None:
        if oid not in locations:
            raise ObjectMissingError(
                oid.hex(), f"needed by {needed_by}; run `coursevault check` before pruning"
            )
        content.add(oid)

    def mark_dictionary(dict_id: ObjectId, needed_by: str) -> None:
        if dict_id in marked_dicts:
            return
        keep_content(dict_id, needed_by)
        for link, sources in repo.dictionary_chain(dict_id):
            if link in marked_dicts:
                return  # and the rest of the chain with it
            marked_dicts.add(link)
            keep_content(link, needed_by)
            for oid in sources:
                keep_content(oid, f"dictionary {link.hex()}")
            needed_by = f"dictionary {link.hex()}"

    for dict_id, needed_by in dictionaries:
        mark_dictionary(dict_id, needed_by)

    # A block holding a kept object needs the dictionary it names -- in
    # every pack that holds a copy, not only the packs kept: until the old index
    # files are gone (step 4) a reader may take any copy, so a prune killed
    # midway must leave those dictionaries indexed.  Those kept only for blocks
    # repacked below are freed by the next prune (and what only they needed,
    # one level of a chain per prune).
    done: set[ObjectId] = set()
    while True:
        needed: list[ObjectId] = []
        for oid in (reachable | content) - done:
            for loc in locations[oid]:
                named = repo.block_dictionary(loc)
                if named is not None and named not in marked_dicts:
                    needed.append(named)
            done.add(oid)
        if not needed:
            break
        for named in needed:
            mark_dictionary(named, "a block's dictionary")
    reachable |= content

    # 2. classify packs by the share of their object bytes still needed
    keep, repack, delete, used = _classify(locations, reachable, pack_sizes, repack_below)
    report.reachable_objects = len(reachable)
    report.packs_repacked = len(repack)
    report.packs_deleted = len(delete)

    # where each reachable object will live: a kept pack if it is in one already
    final: dict[ObjectId, Location] = {}
    to_copy: list[tuple[ObjectId, Location]] = []
    for oid in reachable:
        locs = locations[oid]
        kept = next((loc for loc in locs if loc.pack.hex() in keep), None)
        if kept is not None:
            final[oid] = kept
        else:
            to_copy.append((oid, locs[0]))

    if dry_run:
        report.bytes_after = (
            report.bytes_before
            - sum(pack_sizes[p] for p in delete)
            + sum(used.get(p, 0) for p in repack)
        )
        return report

    # 3. copy the survivors of repacked packs
    say(f"repacking {len(to_copy)} objects from {len(repack)} packs")
    to_copy.sort(key=lambda item: (item[1].pack, item[1].block_offset, item[1].offset))
    writer = PackWriter(int(repo.config["block_size"]), int(repo.config["zstd_level"]))
    pack_size = int(repo.config["pack_size"])

    def flush() -> None:
        nonlocal writer
        if writer.empty:
            return
        pack_id, data = writer.finish()
        backend.write(pack_key(pack_id), data)
        for t, oid, boff, blen, off, ln in writer.placed:
            final[oid] = Location(ObjectType(t), pack_id, boff, blen, off, ln)
        report.packs_written += 1
        writer = PackWriter(int(repo.config["block_size"]), int(repo.config["zstd_level"]))

    for oid, loc in to_copy:
        kind, payload = repo.read_at(oid, loc)
        writer.add(kind, oid, payload)
        if writer.size >= pack_size or len(writer.where) >= MAX_PACK_OBJECTS:
            flush()
    flush()

    # 4. the new index, then away with the old
    say("writing the new index")
    entries = sorted(final.items(), key=lambda e: (e[1].pack, e[1].block_offset, e[1].offset))
    new_index: set[str] = set()
    for i in range(0, len(entries), MAX_ENTRIES_PER_FILE):
        idx_id, data = encode_index(entries[i : i + MAX_ENTRIES_PER_FILE])
        backend.write(index_key(idx_id), data)
        new_index.add(idx_id.hex())
    report.index_files_written = len(new_index)
    for name in old_index:
        if name not in new_index:
            backend.delete(f"index/{name}")
            report.index_files_deleted += 1

    # 5. packs and leftovers nothing needs
    say(f"deleting {len(delete)} packs")
    for name in delete:
        backend.delete(pack_key(bytes.fromhex(name)))
    temporary = getattr(backend, "list_temporary", None)
    if temporary is not None:
        for key in list(temporary()):
            if not key.startswith("locks/"):
                backend.delete(key)

    repo.rebuild_catalog()
    report.bytes_after = sum(s for _, s in backend.list("packs/")) + sum(
        s for _, s in backend.list("index/")
    )
    return report
