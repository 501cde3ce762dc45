"""Index files: which object lives where.

An index file names the packs it covers and lists, for each object, its type,
pack, block and slice.  Index files are immutable and content-addressed (the
key is ``index/<blake3 of the file>``); every writer adds its own, so writers
never coordinate.  They live in the repository itself, so the repository is
self-contained; the catalog database is only a fast cache of their union.

Layout (little-endian)::

    "CVIX" u8 version(=1) u8[3] zero   zstd frame of:
        u32 n_packs   n_packs * pack_id[32]
        u32 n         n * (id[32] u8 type u32 pack_no u64 block_offset
                           u32 block_length u32 offset u32 length)

The body is compressed: ids do not shrink, but the locations of neighbouring
objects are nearly alike (57 bytes an entry become about 36).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

import blake3
import zstandard

from coursevault.store.ids import ID_SIZE, TYPES
from coursevault.store.pack import Location

INDEX_MAGIC = b"CVIX"
INDEX_VERSION = 1
INDEX_ENTRY = struct.Struct(f"<{ID_SIZE}sBIQIII")
COUNT = struct.Struct("<I")
MAX_ENTRIES_PER_FILE = 32768  # about 1.2 MB an index file; bounds commit memory
MAX_INDEX_BYTES = 4 + 64 * 32 * MAX_ENTRIES_PER_FILE + 4 + INDEX_ENTRY.size * MAX_ENTRIES_PER_FILE


class IndexFormatError(Exception):
    """An index file does not follow the layout."""


def index_key(index_id: bytes) -> str:
    return f"index/{index_id.hex()}"


# An index entry as a flat tuple: id, type, pack, block offset, block length,
# offset, length -- what a write session commits (no Location per object).
Row = tuple[bytes, int, bytes, int, int, int, int]


def encode_index(entries: Iterable[tuple[bytes, Location]]) -> tuple[bytes, bytes]:
    """Serialize entries; return (index id, bytes)."""
    return encode_index_rows(
        (oid, int(loc.type), loc.pack, loc.block_offset, loc.block_length, loc.offset, loc.length)
        for oid, loc in entries
    )


def encode_index_rows(rows: Iterable[Row]) -> tuple[bytes, bytes]:
    """:func:`encode_index` for entries as :data:`Row` tuples."""
    table = IndexTable()
    for row in rows:
        table.add(row)
    return table.encode()


class IndexTable:
    """An index file's entries packed as they are added, its packs numbered
    in the order first named.

    Why: a commit writes up to MAX_ENTRIES_PER_FILE entries to a file, and a
    list of them as tuples, their packed copies and the framed body held
    them three times over (8 MiB and more at a full backup's peak,
    docs/benchmarks.md 9b); packed once here, they are 57 bytes each."""

    def __init__(self) -> None:
        self.packs: dict[bytes, int] = {}
        self.table = bytearray()
        self.count = 0

    def add(self, row: Row) -> None:
        oid, t, pack, boff, blen, off, ln = row
        no = self.packs.get(pack)
        if no is None:
            if len(pack) != ID_SIZE:
                raise ValueError(f"a pack id is {ID_SIZE} bytes, not {len(pack)}")
            no = self.packs[pack] = len(self.packs)
        self.table += INDEX_ENTRY.pack(oid, t, no, boff, blen, off, ln)
        self.count += 1

    def encode(self) -> tuple[bytes, bytes]:
        """(index id, the file's bytes).

        The body is compressed from the table itself, its head put before it
        for the while: with a copy of the body beside the table and one of
        the file beside its frame, encoding a full file made 4.7 MiB beside
        its 1.8 MiB table at a full backup's commit; 3.0 now (docs/benchmarks.md
        9b).  The table is its own again on return."""
        head = bytearray(COUNT.pack(len(self.packs)))
        for pack in self.packs:
            head += pack
        head += COUNT.pack(self.count)
        table = self.table
        table[0:0] = head  # in place where the block can grow (glibc remaps a mapped one)
        try:
            body = zstandard.ZstdCompressor(level=3).compress(table)
        finally:
            del table[: len(head)]  # in place too: the bytearray moves its start
        data = b"".join((INDEX_MAGIC, bytes([INDEX_VERSION, 0, 0, 0]), body))
        del body
        return blake3.blake3(data).digest(), data

    def sorted_rows(self) -> Iterator[Row]:
        """The entries as rows in id order (a catalog inserts them so: its
        B-tree pages are then written in order), made as they are asked for."""
        size = INDEX_ENTRY.size
        view = memoryview(self.table)
        try:
            records = sorted(view[i : i + size].tobytes() for i in range(0, len(view), size))
        finally:
            view.release()
        packs = list(self.packs)
        unpack = INDEX_ENTRY.unpack
        for record in records:
            oid, t, no, boff, blen, off, ln = unpack(record)
            yield oid, t, packs[no], boff, blen, off, ln


def decode_index(data: bytes) -> Iterator[tuple[bytes, Location]]:
    """Parse an index file, checking its structure (not its hash: see callers)."""
    packs, table = decode_index_table(data)
    for oid, t, no, boff, blen, off, ln in INDEX_ENTRY.iter_unpack(table):
        yield oid, Location(TYPES[t], packs[no], boff, blen, off, ln)


_TYPE_TAGS = bytes(TYPES)  # the tag bytes of the object types


def decode_index_table(data: bytes) -> tuple[list[bytes], bytes]:
    """An index file as (its packs, its entry table): the table is
    ``INDEX_ENTRY`` after ``INDEX_ENTRY``, each naming a pack by its number
    in the list; every type and pack number is checked (a column at a time,
    not entry by entry: check builds its table of every entry from these)."""
    if data[:4] != INDEX_MAGIC:
        raise IndexFormatError("not an index file (bad magic)")
    if len(data) < 8 or data[4] != INDEX_VERSION:
        raise IndexFormatError("unknown index version")
    try:
        size = zstandard.frame_content_size(data[8:])
        if size < 0 or size > MAX_INDEX_BYTES:
            raise IndexFormatError(f"index body size {size} is not plausible")
        dobj = zstandard.ZstdDecompressor().decompressobj()
        body = dobj.decompress(data[8:])
    except (zstandard.ZstdError, MemoryError) as exc:
        raise IndexFormatError(f"index body does not decompress: {exc}") from None
    if not dobj.eof or dobj.unused_data or len(body) != size:
        raise IndexFormatError("index body is truncated or followed by garbage")
    data = body
    if len(data) < 4:
        raise IndexFormatError("truncated index body")
    (n_packs,) = COUNT.unpack_from(data, 0)
    pos = 4
    end_packs = pos + n_packs * ID_SIZE
    if end_packs + 4 > len(data):
        raise IndexFormatError("truncated pack list")
    packs = [data[pos + i * ID_SIZE : pos + (i + 1) * ID_SIZE] for i in range(n_packs)]
    (n,) = COUNT.unpack_from(data, end_packs)
    pos = end_packs + 4
    if pos + n * INDEX_ENTRY.size != len(data):
        raise IndexFormatError("entry table length does not match its count")
    table = data[pos:]
    if n and not _numbers_below(table, n_packs, ID_SIZE + 1):
        raise IndexFormatError("entry names an unknown pack or type")
    if table[ID_SIZE :: INDEX_ENTRY.size].translate(None, _TYPE_TAGS):
        raise IndexFormatError("entry names an unknown pack or type")
    return packs, table


def _numbers_below(table: bytes, limit: int, at: int) -> bool:
    """Whether the u32 at ``at`` of every entry of ``table`` is below ``limit``."""
    size = INDEX_ENTRY.size
    if limit <= 256:  # the low byte says it, and the others must be zero
        high = b"".join([table[at + k :: size] for k in (1, 2, 3)])
        return not high.strip(b"\0") and max(table[at::size]) < limit
    return all(
        int.from_bytes(table[i : i + 4], "little") < limit for i in range(at, len(table), size)
    )
