"""Every index entry of a repository, packed and sorted by id: what check and
prune walk.

Both need each object's locations (every copy, not only the catalog's one)
and a mark per object as they walk the snapshots.  As Python objects -- a dict
of lists of ``Location`` tuples and sets of ids -- that took about 950 bytes
an object: prune's peak was 705 MB for the 743,000 objects of the generated 1
GB course.  Here an entry is 57 bytes in one buffer, 8 more for its id's
prefix in a sorted array, and one byte of marks: 66 bytes, whatever the
number of copies.  Lookups bisect the prefixes.

Lookups first narrow to a bucket of the id's leading bits (a start row per
bucket: at most 8 bytes an entry, for one or two bisection steps instead of
twenty; a walk looks an id up for every reference it meets).

Still a table of every entry in memory (about 74 MB a million entries): a
repository of many big courses would want the walk on disk.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import accumulate, compress
from operator import eq

from coursevault.store.ids import TYPES, ObjectId
from coursevault.store.index import Row
from coursevault.store.pack import Location

# id, type, pack number, block offset, block length, offset, length
_ENTRY = struct.Struct("<32sBIQIII")
_SIZE = _ENTRY.size
_PREFIX = struct.Struct(f">Q{_SIZE - 8}x")  # an entry's id's first 8 bytes, as a number
_ROW_BITS = 32  # rows are numbered below 2**32
_NONE = range(0)


class ObjectTable:
    """Index entries by row, in id order (rows of one id are adjacent).

    ``marks`` holds one byte per row for the caller's walks; :meth:`mark`
    sets bits on every row of an id, so any of its rows answers.
    """

    def __init__(self, entries: Iterable[tuple[ObjectId, Location]]) -> None:
        packs: list[bytes] = []
        pack_no: dict[bytes, int] = {}
        raw = bytearray()
        entry = _ENTRY.pack
        for oid, loc in entries:
            no = pack_no.get(loc.pack)
            if no is None:
                no = pack_no[loc.pack] = len(packs)
                packs.append(loc.pack)
            raw += entry(
                oid, loc.type, no, loc.block_offset, loc.block_length, loc.offset, loc.length
            )
        self._build(raw, packs)

    @classmethod
    def from_index_tables(cls, tables: Iterable[tuple[list[bytes], bytes]]) -> ObjectTable:
        """The table of index files' entry tables (``index.decode_index_table``,
        whose entries are this table's, their pack numbers the file's own):
        renumbered a column at a time, with no object per entry."""
        pack_no: dict[bytes, int] = {}
        raw = bytearray()
        at = 33  # the pack number of an entry
        for file_packs, entries in tables:
            numbers = [pack_no.setdefault(p, len(pack_no)) for p in file_packs]
            part = bytearray(entries)
            if len(numbers) <= 256:  # the file's numbers are one byte: translate them
                low = bytes(part[at::_SIZE])
                for k in range(4):
                    part[at + k :: _SIZE] = low.translate(
                        bytes((n >> 8 * k) & 0xFF for n in numbers).ljust(256, b"\0")
                    )
            else:
                for i in range(at, len(part), _SIZE):
                    no = numbers[int.from_bytes(part[i : i + 4], "little")]
                    part[i : i + 4] = no.to_bytes(4, "little")
            raw += part
        table = cls.__new__(cls)
        table._build(raw, list(pack_no))
        return table

    def _build(self, raw: bytearray, packs: list[bytes]) -> None:
        """Sort ``raw`` (entries, their packs numbered in ``packs``) by id."""
        self._packs = packs
        # Sorting (prefix, input row) as one int needs no key function.  Ids
        # that share a prefix (copies of one object, or -- about once in 10^8
        # at a million objects -- two ids) are then in input order: sorted by
        # the whole id below, so the rows of an id are adjacent.
        keys = [p << _ROW_BITS | i for i, (p,) in enumerate(_PREFIX.iter_unpack(raw))]
        keys.sort()
        mask = (1 << _ROW_BITS) - 1
        view = memoryview(raw)
        data = bytearray()
        for key in keys:
            i = (key & mask) * _SIZE
            data += view[i : i + _SIZE]
        view.release()
        del raw
        prefixes = [key >> _ROW_BITS for key in keys]
        del keys
        self._data = data
        n = len(prefixes)
        self.unique = n
        # rows whose prefix is the one before's: copies, or ids sharing one
        for row in compress(range(1, n), map(eq, prefixes[1:], prefixes)):
            if row == 1 or prefixes[row - 1] != prefixes[row - 2]:  # a run's first repeat
                end = row + 1
                while end < n and prefixes[end] == prefixes[row]:
                    end += 1
                block = sorted(self._entry(r) for r in range(row - 1, end))
                data[(row - 1) * _SIZE : end * _SIZE] = b"".join(block)
                self.unique -= end - row + 1 - len({e[:32] for e in block})
        self._prefixes = array("Q", prefixes)
        self.marks = bytearray(n)
        # bucket b holds the rows whose prefix's leading bits are b: rows
        # _starts[b] to _starts[b + 1]; about one id a bucket
        bits = max(1, min(24, n.bit_length()))
        self._shift = shift = 64 - bits
        counts = [0] * ((1 << bits) + 1)
        for prefix in prefixes:
            counts[(prefix >> shift) + 1] += 1
        self._starts = array("I", accumulate(counts))

    def __len__(self) -> int:
        """The number of entries (an object indexed twice has two)."""
        return len(self._prefixes)

    def _entry(self, row: int) -> bytes:
        return bytes(self._data[row * _SIZE : (row + 1) * _SIZE])

    def rows(self, oid: ObjectId) -> range:
        """The rows of ``oid`` (empty if it is not indexed)."""
        prefixes = self._prefixes
        key = int.from_bytes(oid[:8], "big")
        bucket = key >> self._shift
        row = bisect_left(prefixes, key, self._starts[bucket], self._starts[bucket + 1])
        if row == len(prefixes) or prefixes[row] != key or len(oid) != 32:
            return _NONE
        data = self._data
        if data.startswith(oid, row * _SIZE) and (
            row + 1 == len(prefixes) or prefixes[row + 1] != key
        ):
            return range(row, row + 1)  # the one row of an id (nearly always)
        n = len(prefixes)
        while row < n and prefixes[row] == key:
            if data.startswith(oid, row * _SIZE):
                end = row + 1
                while end < n and data.startswith(oid, end * _SIZE):
                    end += 1
                return range(row, end)
            row += 1
        return _NONE

    def find(self, oid: ObjectId) -> int:
        """The first row of ``oid``, or -1."""
        rows = self.rows(oid)
        return rows.start if rows else -1

    def __contains__(self, oid: object) -> bool:
        return isinstance(oid, bytes) and self.find(oid) >= 0

    def oid(self, row: int) -> ObjectId:
        return bytes(self._data[row * _SIZE : row * _SIZE + 32])

    def type(self, row: int) -> int:
        return self._data[row * _SIZE + 32]

    def location(self, row: int) -> Location:
        _oid, t, no, boff, blen, off, ln = _ENTRY.unpack_from(self._data, row * _SIZE)
        return Location(TYPES[t], self._packs[no], boff, blen, off, ln)

    def index_row(self, row: int) -> Row:
        """The entry as an index row (``index.Row``)."""
        oid, t, no, boff, blen, off, ln = _ENTRY.unpack_from(self._data, row * _SIZE)
        return oid, t, self._packs[no], boff, blen, off, ln

    def pack_number(self, row: int) -> int:
        """The row's pack as a number (see :meth:`pack`)."""
        return int.from_bytes(self._data[row * _SIZE + 33 : row * _SIZE + 37], "little")

    def pack(self, number: int) -> bytes:
        return self._packs[number]

    @property
    def pack_count(self) -> int:
        return len(self._packs)

    def place(self, row: int) -> tuple[int, int, int]:
        """(pack number, block offset, offset): where the row's copy sits."""
        _oid, _t, no, boff, _blen, off, _ln = _ENTRY.unpack_from(self._data, row * _SIZE)
        return no, boff, off

    def length(self, row: int) -> int:
        return int.from_bytes(self._data[row * _SIZE + 53 : row * _SIZE + 57], "little")

    def entries(self) -> Iterator[tuple[ObjectId, int, int, int, int, int, int]]:
        """Every row in order as (id, type, pack number, block offset, block
        length, offset, length): the fast way through the whole table."""
        return _ENTRY.iter_unpack(self._data)

    def mark(self, rows: range, bits: int) -> None:
        marks = self.marks
        for row in rows:
            marks[row] |= bits

    def objects(self) -> Iterator[range]:
        """The rows of each object in turn."""
        data = self._data
        n = len(self)
        row = 0
        while row < n:
            oid = data[row * _SIZE : row * _SIZE + 32]
            end = row + 1
            while end < n and data[end * _SIZE : end * _SIZE + 32] == oid:
                end += 1
            yield range(row, end)
            row = end
