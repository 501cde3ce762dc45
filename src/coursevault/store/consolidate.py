"""Consolidating small packs: prune's step that copies their blocks whole into
packs of the target size.

Every ingest writes its own pack, and a night of one course adds about 70 KB
against a 16 MiB target: a site of 10,000 courses would gain 10,000 files a
night, each listed, statted and (on S3) requested on its own.  A pack is
*small* below a quarter of the target; once a prune finds ``MERGE_MIN`` of
them whose objects it keeps anyway, it copies their blocks that hold a kept
object into new packs, and indexes the kept objects there.

Blocks are copied whole, as stored: a night's blocks are compressed against
its course's dictionary, and recompressing them without it (what a repack of
mostly-garbage packs does) would take them back to about twice their size.
The block still names its dictionary, which prune keeps for every block
holding a kept object, in any copy.  Each kept object is hashed again before
its block is copied: a block damaged since it was written stops the prune
(``check`` says which), rather than living on under a new pack's name.

Crash safety is prune's: the new packs are written before the index files
naming them, and the small packs are deleted only after the old index files
are gone.  The packs are the same bytes on a rerun (the same blocks, in the
same order), so a rerun after a kill rewrites, not duplicates, them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import blake3

from coursevault.errors import ChecksumMismatchError, CorruptionError, ObjectMissingError
from coursevault.store.ids import object_id
from coursevault.store.index import Row
from coursevault.store.objecttable import ObjectTable
from coursevault.store.pack import (
    CODEC_ZSTD_DICT,
    MAX_PACK_OBJECTS,
    PACK_HEADER,
    PACK_VERSION_DICT,
    PackFormatError,
    pack_key,
)
from coursevault.store.repository import Repository

SMALL_SHARE = 4  # a pack is small below pack_size / SMALL_SHARE
MERGE_MIN = 16  # small packs a prune needs to find before it merges them


def small_packs(
    pack_sizes: dict[str, int], keep: set[str], pack_size: int, merge_min: int = MERGE_MIN
) -> set[str]:
    """The kept packs to merge: those below ``pack_size / SMALL_SHARE``, if
    there are at least ``merge_min`` (and 2) of them: fewer are not worth a
    rewrite of the index, and a lone small pack stays.  0: none."""
    small = {p for p in keep if pack_sizes[p] < pack_size // SMALL_SHARE}
    return small if merge_min and len(small) >= max(merge_min, 2) else set()


def merge_blocks(
    repo: Repository,
    table: ObjectTable,
    rows: list[int],
    pack_size: int,
    written: Callable[[], None],
) -> list[Row]:
    """Copy the blocks holding ``rows`` (one row per kept object, sorted by
    place: pack, block, offset) whole into new packs of up to ``pack_size``
    bytes; the index rows of those objects in them.  ``written()`` is called
    after each pack is durable."""
    out: list[Row] = []
    buf = bytearray(PACK_HEADER)
    placed: list[tuple[int, int, int, int]] = []  # (row, new block offset, block length, 0)

    def flush() -> None:
        nonlocal buf
        if not placed:
            return
        data = bytes(buf)
        pack_id = blake3.blake3(data).digest()
        repo.backend.write(pack_key(pack_id), data)
        for row, boff, blen, _ in placed:
            oid, t, _pack, _boff, _blen, off, ln = table.index_row(row)
            out.append((oid, t, pack_id, boff, blen, off, ln))
        placed.clear()
        buf = bytearray(PACK_HEADER)
        written()

    for block, block_rows in _blocks(repo, table, rows):
        if len(buf) > len(PACK_HEADER) and (
            len(buf) + len(block) > pack_size or len(placed) + len(block_rows) > MAX_PACK_OBJECTS
        ):
            flush()
        boff = len(buf)
        buf += block
        if block[1] == CODEC_ZSTD_DICT:
            buf[4] = PACK_VERSION_DICT  # readers of version 1 refuse it whole
        placed.extend((row, boff, len(block), 0) for row in block_rows)
    flush()
    return out


def _blocks(
    repo: Repository, table: ObjectTable, rows: list[int]
) -> Iterator[tuple[bytes, list[int]]]:
    """Each block holding one of ``rows`` (in order), verified, with its rows."""
    pack_no = -1
    data = b""
    i = 0
    while i < len(rows):
        no, boff, _off = table.place(rows[i])
        j = i + 1
        while j < len(rows) and table.place(rows[j])[:2] == (no, boff):
            j += 1
        if no != pack_no:  # a small pack: read once, whole
            name = table.pack(no)
            try:
                data = repo.backend.read(pack_key(name))
            except FileNotFoundError:
                raise ObjectMissingError("", f"pack {name.hex()} is missing") from None
            pack_no = no
        loc = table.location(rows[i])
        block = data[boff : boff + loc.block_length]
        _verify(repo, table, block, rows[i:j])
        yield block, rows[i:j]
        i = j


def _verify(repo: Repository, table: ObjectTable, block: bytes, rows: list[int]) -> None:
    """Every object of ``rows`` is in ``block`` as its index says."""
    pack = table.pack(table.pack_number(rows[0])).hex()
    try:
        raw, _entries = repo.block_reader.decode(block)
    except PackFormatError as exc:
        raise CorruptionError(f"pack {pack}: {exc}; run `coursevault check`") from exc
    for row in rows:
        loc = table.location(row)
        payload = raw[loc.offset : loc.offset + loc.length]
        if len(payload) != loc.length or object_id(loc.type, payload) != table.oid(row):
            raise ChecksumMismatchError(
                table.oid(row).hex(), pack, "while merging small packs; run `coursevault check`"
            )
