"""Rebuilding index files from the packs themselves (``coursevault repair index``).

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

from coursevault.errors import CoursevaultError
from coursevault.store.ids import TYPES, ObjectId, object_id
from coursevault.store.index import MAX_ENTRIES_PER_FILE, Row, encode_index_rows, index_key
from coursevault.store.pack import PackFormatError, block_dictionary, iter_blocks, pack_key
from coursevault.store.repository import MAX_DICT_DEPTH, Repository


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
    packs = sorted(
        bytes.fromhex(key.rsplit("/", 1)[1])
        for key, _size in backend.list("packs/")
        if _is_hex_id(key.rsplit("/", 1)[1])
    )
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
    while chunk := list(itertools.islice(it, MAX_ENTRIES_PER_FILE)):
        idx_id, data = encode_index_rows(chunk)
        backend.write(index_key(idx_id), data)
        report.index_files_written += 1
    for name in damaged:  # what they named that is readable is indexed again
        backend.delete(f"index/{name}")
        report.index_files_removed.append(name)
    repo.forget_cached()
    repo.rebuild_catalog()
    return report


def _is_hex_id(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


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
