"""Every index entry of a repository, packed and sorted by id: what check and
prune walk.

Both need each object's locations (every copy, not only the catalog's one)
and a mark per object as they walk the snapshots.  As Python objects -- a dict
of lists of ``Location`` tuples and sets of ids -- that took about 950 bytes
an object: prune's peak was 705 MB for the 743,000 objects of the generated 1
GB course.  Here an entry is 57 bytes in one buffer, 8 more for its id's
prefix in a sorted array, and one byte of marks: 66 bytes, whatever the
number of copies.  Lookups bisect the prefixes.

Still a table of every entry in memory (about 66 MB a million entries): a
repository of many big courses would want the walk on disk.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator

from coursevault.store.ids import TYPES, ObjectId
from coursevault.store.index import Row
from coursevault.store.pack import Location

# id, type, pack number, block offset, block length, offset, length
_ENTRY = struct.Struct("<32sBIQIII")
_SIZE = _ENTRY.size
_ROW_BITS = 32  # rows are numbered below 2**32


class ObjectTable:
    """Index entries by row, in id order (rows of one id are adjacent).

    ``marks`` holds one byte per row for the caller's walks; :meth:`mark`
    sets bits on every row of an id, so any of its rows answers.
    """

    def __init__(self, entries: Iterable[tuple[ObjectId, Location]]) -> None:
        self._packs: list[bytes] = []
        pack_no: dict[bytes, int] = {}
        raw = bytearray()
        keys: list[int] = []
        entry = _ENTRY.pack
        for oid, loc in entries:
            no = pack_no.get(loc.pack)
            if no is None:
                no = pack_no[loc.pack] = len(self._packs)
                self._packs.append(loc.pack)
            raw += entry(
                oid, loc.type, no, loc.block_offset, loc.block_length, loc.offset, loc.length
            )
            keys.append(int.from_bytes(oid[:8], "big") << _ROW_BITS | len(keys))
        # Sorting (prefix, input row) as one int needs no key function.  Ids
        # that share a prefix (copies of one object, or -- about once in 10^8
        # at a million objects -- two ids) are then in input order: sorted by
        # the whole id below, so the rows of an id are adjacent.
        keys.sort()
        mask = (1 << _ROW_BITS) - 1
        view = memoryview(raw)
        data = bytearray()
        for key in keys:
            i = key & mask
            data += view[i * _SIZE : (i + 1) * _SIZE]
        view.release()
        del raw
        self._prefixes = array("Q", [key >> _ROW_BITS for key in keys])
        del keys
        self._data = data
        self.unique = 0
        n = len(self._prefixes)
        row = 0
        while row < n:
            end = row + 1
            while end < n and self._prefixes[end] == self._prefixes[row]:
                end += 1
            if end - row > 1:  # copies, or ids that share a prefix
                block = sorted(self._entry(r) for r in range(row, end))
                data[row * _SIZE : end * _SIZE] = b"".join(block)
                self.unique += len({e[:32] for e in block})
            else:
                self.unique += 1
            row = end
        self.marks = bytearray(n)

    def __len__(self) -> int:
        """The number of entries (an object indexed twice has two)."""
        return len(self._prefixes)

    def _entry(self, row: int) -> bytes:
        return bytes(self._data[row * _SIZE : (row + 1) * _SIZE])

    def rows(self, oid: ObjectId) -> range:
        """The rows of ``oid`` (empty if it is not indexed)."""
        prefixes = self._prefixes
        key = int.from_bytes(oid[:8], "big")
        row = bisect_left(prefixes, key)
        n = len(prefixes)
        data = self._data
        while row < n and prefixes[row] == key:
            if data[row * _SIZE : row * _SIZE + 32] == oid:
                end = row + 1
                while end < n and data[end * _SIZE : end * _SIZE + 32] == oid:
                    end += 1
                return range(row, end)
            row += 1
        return range(0)

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
