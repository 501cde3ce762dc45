"""Repairs from what the repository still holds: index files rebuilt from the
packs themselves (``coursevault repair index``), damaged packs replaced by
what of them still reads and missing ones dropped from the index
(``coursevault repair packs``).

Packs are self-describing (docs/format.md, "Packs"): every block carries its
table of contents, each object's type and slice, and an object's id is the
hash of its bytes.  So when an index file is damaged or lost, the objects it
named can be found again by reading the packs; this writes index files for
every object the remaining index files do not name, then deletes the damaged
index files, whose every readable object is now named by a sound one.

Blocks compressed against a dictionary decode only once that dictionary can
be read, and its content may come from objects that only this repair finds
again (a walk dictionary reads trees through the catalog).  A block decoded
against a dictionary read from too few objects yields wrong bytes, whose
hashes name nothing; so the repair goes in rounds, each decoding the
dictionary blocks against what the round before found, until a round finds
exactly what the last one did.  Only that fixed point is written: an entry
that a later round no longer finds was never an object.

Runs under the exclusive lock (no writer may add packs meanwhile).  Memory
is the recovered entries (about 80 bytes each) plus one pack.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import blake3

from coursevault.errors import CorruptionError, CoursevaultError
from coursevault.store.catalog_sync import checkpoint_from_listing, index_names, journal_files
from coursevault.store.dictionaries import MAX_DICT_DEPTH
from coursevault.store.ids import TYPES, ObjectId, ObjectType, object_id
from coursevault.store.index import MAX_ENTRIES_PER_FILE, Row, encode_index_rows, index_key
from coursevault.store.journal import INDEX
from coursevault.store.pack import (
    MAX_PACK_OBJECTS,
    Location,
    PackFormatError,
    PackWriter,
    block_dictionary,
    iter_blocks,
    pack_files,
    pack_key,
)
from coursevault.store.repository import Repository


@dataclass
class RepairReport:
    packs: int = 0
    blocks: int = 0
    rounds: int = 0
    objects_indexed: int = 0  # objects no sound index file named
    index_files_written: int = 0
    index_files_removed: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # blocks whose objects are lost


def repair_index(
    repo: Repository, progress: Callable[[int, int], None] | None = None
) -> RepairReport:
    """Index every object of every pack that no readable index file names."""
    report = RepairReport()
    repo.disable_disk_dictionaries()  # never trust nor keep content read mid-repair
    damaged = repo.rebuild_catalog()["damaged_index_files"]
    backend = repo.backend
    packs = sorted(bytes.fromhex(name) for name, _size in pack_files(backend))
    report.packs = len(packs)

    # round 1: every block; blocks without a dictionary are settled at once
    settled: dict[ObjectId, Row] = {}
    dict_blocks: list[tuple[bytes, int, int]] = []
    for i, pack in enumerate(packs):
        _read_pack(repo, pack, settled, dict_blocks, report)
        if progress:
            progress(i + 1, len(packs))
    report.blocks += len(dict_blocks)
    settled = _not_indexed(repo, settled)

    # later rounds: dictionary blocks, until what they give stops changing
    found: dict[ObjectId, Row] = {}
    repo.catalog.add_locations(list(settled.values()))
    last = RepairReport()
    for report.rounds in range(1, MAX_DICT_DEPTH + 3):
        repo.forget_cached()
        last = RepairReport()
        decoded = _read_dict_blocks(repo, dict_blocks, settled, last)
        this = _not_indexed(repo, decoded, exclude=found)
        if this == found:
            break
        repo.catalog.remove_locations(list(found))
        repo.catalog.add_locations(list(this.values()))
        found = this
    else:
        last.unreadable.append("dictionary blocks: what they decode to did not settle")
    report.unreadable += last.unreadable

    rows = sorted({**settled, **found}.values())
    report.objects_indexed = len(rows)
    it = iter(rows)
    written: list[tuple[str, str]] = []
    while chunk := list(itertools.islice(it, MAX_ENTRIES_PER_FILE)):
        idx_id, data = encode_index_rows(chunk)
        backend.write(index_key(idx_id), data)
        written.append((INDEX, idx_id.hex()))
        report.index_files_written += 1
    journal_files(repo, added=written, removed=[(INDEX, name) for name in damaged])
    for name in damaged:  # what they named that is readable is indexed again
        backend.delete(f"index/{name}")
        report.index_files_removed.append(name)
    repo.forget_cached()
    checkpoint_from_listing(repo)
    repo.rebuild_catalog()
    return report


def _read_pack(
    repo: Repository,
    pack: bytes,
    settled: dict[ObjectId, Row],
    dict_blocks: list[tuple[bytes, int, int]],
    report: RepairReport,
) -> None:
    """The objects of ``pack``'s blocks that need no dictionary into
    ``settled``; the others' places into ``dict_blocks``."""
    name = pack.hex()
    try:
        data = repo.backend.read(pack_key(pack))
    except (FileNotFoundError, CoursevaultError) as exc:
        report.unreadable.append(f"pack {name}: unreadable: {exc}")
        return
    try:
        for boff, blen in iter_blocks(data):
            block = data[boff : boff + blen]
            try:
                needs = block_dictionary(block)
            except PackFormatError as exc:
                report.unreadable.append(f"pack {name} block at {boff}: {exc}")
                continue
            if needs is not None:
                dict_blocks.append((pack, boff, blen))
                continue
            report.blocks += 1
            _decode_into(repo, block, pack, boff, blen, settled, report)
    except PackFormatError as exc:  # the pack's layout breaks off here
        report.unreadable.append(f"pack {name}: {exc}")


def _read_dict_blocks(
    repo: Repository,
    blocks: list[tuple[bytes, int, int]],
    settled: dict[ObjectId, Row],
    report: RepairReport,
) -> dict[ObjectId, Row]:
    out: dict[ObjectId, Row] = {}
    for pack, boff, blen in blocks:
        try:
            block = repo.backend.read(pack_key(pack), boff, blen)
        except (FileNotFoundError, CoursevaultError):
            continue  # reported in round 1
        _decode_into(repo, block, pack, boff, blen, out, report)
    for oid in settled:
        out.pop(oid, None)
    return out


def _decode_into(
    repo: Repository,
    block: bytes,
    pack: bytes,
    boff: int,
    blen: int,
    out: dict[ObjectId, Row],
    report: RepairReport,
) -> None:
    try:
        raw, table = repo.block_reader.decode(block)
    except PackFormatError as exc:
        report.unreadable.append(f"pack {pack.hex()} block at {boff}: {exc}")
        return
    except CoursevaultError as exc:  # its dictionary cannot be read (yet)
        report.unreadable.append(f"pack {pack.hex()} block at {boff}: its dictionary: {exc}")
        return
    for t, off, ln in table:
        kind = TYPES.get(t)
        if kind is None or off + ln > len(raw):
            continue
        oid = object_id(kind, raw[off : off + ln])
        out.setdefault(oid, (oid, t, pack, boff, blen, off, ln))


def _not_indexed(
    repo: Repository, rows: dict[ObjectId, Row], exclude: dict[ObjectId, Row] | None = None
) -> dict[ObjectId, Row]:
    """Those of ``rows`` the sound index files do not name (what the catalog
    holds, less the entries ``exclude`` added to it)."""
    known = repo.catalog.lookup_many(list(rows), fields="id")
    return {
        oid: row
        for oid, row in rows.items()
        if oid not in known or (exclude is not None and oid in exclude)
    }


@dataclass
class SalvageReport:
    packs: int = 0
    damaged: list[str] = field(default_factory=list)  # packs whose bytes are not their name's
    missing: list[str] = field(default_factory=list)  # packs an index names that are gone
    objects_dropped: int = 0  # index entries of the missing packs, removed
    objects_salvaged: int = 0  # indexed objects read whole from them, now in new packs
    objects_lost: list[str] = field(default_factory=list)  # indexed objects that were not
    packs_written: int = 0
    index_files_rewritten: int = 0


def salvage_packs(
    repo: Repository, progress: Callable[[int, int], None] | None = None
) -> SalvageReport:
    """Replace every damaged pack (its bytes do not hash to its name) by new
    packs holding each of its indexed objects that still reads whole, then
    remove it from the index and the repository (``repair packs``).

    What did not read whole is lost to this repository: ``check`` then names
    the snapshots that need it, which a copy (or ``forget``) must settle.
    So are the objects of a pack an index names that is not there at all:
    their entries are dropped, so that writers store those objects again
    instead of taking them for stored, and ``sync --refill`` from another
    repository copies them back.
    Order keeps a crash harmless: new packs, then index files naming them,
    then index files without the damaged packs, and the damaged packs last.
    Runs under the exclusive lock.  Memory: one pack and the salvaged rows.
    """
    report = SalvageReport()
    backend = repo.backend
    names = sorted(name for name, _size in pack_files(backend))
    report.packs = len(names)
    damaged: set[bytes] = set()
    for i, name in enumerate(names):
        try:
            data = backend.read(pack_key(bytes.fromhex(name)))
        except CorruptionError:
            # sealed: a segment that fails authentication fails the whole
            # read; the objects of its other segments still read, ranged
            damaged.add(bytes.fromhex(name))
        else:
            if blake3.blake3(data).hexdigest() != name:
                damaged.add(bytes.fromhex(name))
        if progress:
            progress(i + 1, len(names))
    report.damaged = sorted(p.hex() for p in damaged)
    listed = {bytes.fromhex(name) for name in names}
    entries = _entries_in(repo, lambda pack: pack in damaged or pack not in listed)
    missing = {loc.pack for loc in entries.values() if loc.pack not in listed}
    report.missing = sorted(p.hex() for p in missing)
    if not damaged and not missing:
        return report
    repo.disable_disk_dictionaries()
    wanted = {oid: loc for oid, loc in entries.items() if loc.pack in damaged}
    report.objects_dropped = len(entries) - len(wanted)
    writer = _Copier(repo, report)
    for oid, loc in sorted(wanted.items(), key=lambda e: (e[1].pack, e[1].block_offset)):
        try:
            kind, payload = repo.read_at(oid, loc)
        except CoursevaultError:
            report.objects_lost.append(oid.hex())
            continue
        writer.add(kind, oid, payload)
        report.objects_salvaged += 1
    salvaged = writer.finish()
    it = iter(sorted(salvaged))
    while chunk := list(itertools.islice(it, MAX_ENTRIES_PER_FILE)):
        idx_id, data = encode_index_rows(chunk)
        backend.write(index_key(idx_id), data)
        journal_files(repo, added=[(INDEX, idx_id.hex())])
    # a missing pack's entries name what no read can find: dropped, so that
    # a writer or `sync --refill` stores those objects again
    report.index_files_rewritten = _drop_from_index(repo, damaged | missing)
    for pack in sorted(damaged):
        backend.delete(pack_key(pack))
    repo.forget_cached()
    checkpoint_from_listing(repo)
    repo.rebuild_catalog()
    return report


def _entries_in(
    repo: Repository, wanted: Callable[[bytes], bool]
) -> dict[ObjectId, Location]:
    """The index entries whose pack is ``wanted`` (one per object)."""
    out: dict[ObjectId, Location] = {}
    for name in index_names(repo.backend, repo.notice):
        try:
            entries = repo.read_index(name)
        except CoursevaultError:
            continue  # repair index deals with damaged index files
        for oid, loc in entries:
            if wanted(loc.pack):
                out.setdefault(oid, loc)
    return out


class _Copier:
    """Objects into new packs of the repository's sizes (no dictionary: the
    salvaged objects come from many nights)."""

    def __init__(self, repo: Repository, report: SalvageReport) -> None:
        self.repo = repo
        self.report = report
        self.rows: list[Row] = []
        self._new()

    def _new(self) -> None:
        cfg = self.repo.config
        self.writer = PackWriter(int(cfg["block_size"]), int(cfg["zstd_level"]))

    def add(self, kind: ObjectType, oid: ObjectId, payload: bytes) -> None:
        self.writer.add(kind, oid, payload)
        full = self.writer.size >= int(self.repo.config["pack_size"])
        if full or len(self.writer.where) >= MAX_PACK_OBJECTS:
            self._flush()

    def _flush(self) -> None:
        if self.writer.empty:
            return
        pack_id, data = self.writer.finish()
        self.repo.backend.write(pack_key(pack_id), data)
        self.rows += [
            (o, t, pack_id, bo, bl, off, ln) for t, o, bo, bl, off, ln in self.writer.placed
        ]
        self.report.packs_written += 1
        self._new()

    def finish(self) -> list[Row]:
        self._flush()
        return self.rows


def _drop_from_index(repo: Repository, packs: set[bytes]) -> int:
    """Rewrite each index file naming ``packs`` without those entries."""
    backend = repo.backend
    rewritten = 0
    for name in index_names(backend, repo.notice):
        try:
            entries = repo.read_index(name)
        except CoursevaultError:
            continue
        if not any(loc.pack in packs for _oid, loc in entries):
            continue
        rows = [
            (
                oid,
                int(loc.type),
                loc.pack,
                loc.block_offset,
                loc.block_length,
                loc.offset,
                loc.length,
            )
            for oid, loc in entries
            if loc.pack not in packs
        ]
        added = []
        if rows:
            idx_id, data = encode_index_rows(rows)
            backend.write(index_key(idx_id), data)
            added.append((INDEX, idx_id.hex()))
        journal_files(repo, added=added, removed=[(INDEX, name)])
        backend.delete(f"index/{name}")
        rewritten += 1
    return rewritten
