"""A write session's private index of objects in packs it wrote but has not committed.

It must answer "did this session already store X?" for every object put, and
list everything at commit -- for up to millions of objects in a 1 GB ingest,
so it cannot be a Python dict (hundreds of MB).  Each flushed pack's entries
are appended to a throwaway temporary file as fixed-size records, in pack
order (the order the index files want); in memory stay a Bloom filter and,
per pack, the sorted 8-byte id prefixes with each entry's position: 12 bytes
an object.  Losing the file in a crash loses nothing, since uncommitted packs
are unreferenced anyway.  Keeping it out of the shared catalog also keeps
other processes (and a PostgreSQL catalog) out of the hot path.

An earlier version kept these entries in a temporary SQLite table: inserting
and reading back every entry cost about a third of a 500,000-object write
(benchmarks/store_bench.py).
"""

from __future__ import annotations

import os
import struct
import tempfile
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from coursevault.store.ids import TYPES
from coursevault.store.index import Row
from coursevault.store.pack import Location

FOUND_MAX = 8192  # ids kept by has(), about a MB
ADD_CHUNK = 2048  # records written at a time by add()
# The Bloom filter's first size, doubled as the index grows past 16 bits an
# entry (131,072 entries, then 262,144, ...: fourfold, a full backup of 2.1
# million objects held 16 MiB of it, now 8; at 0.5 us an entry its rebuilds
# come to about 2 s of such a backup's 150 s, against 1.4 s).  It was 4 MiB from the
# start -- growing cost 3.5 % of the generated 1 GB course's ingest while it
# made a Location per entry -- and so 4 MiB of every backup, a night of
# twenty new objects too; rebuilt from the records as they lie in the file,
# a growth is 0.5 us an entry.
BLOOM_BYTES = 1 << 18
# id, type, block offset, block length, offset in block, length
_REC = struct.Struct("<32sBIIII")
# an id's first three 8-byte slices: its Bloom filter bit positions
_SLICES = struct.Struct("<QQQ")
# the same three slices read straight from a record of the file
_REC_SLICES = struct.Struct(f"<QQQ{_REC.size - _SLICES.size}x")


# a run's sorted section: an id's 8-byte prefix and its record's position
_SORTED = struct.Struct("<QI")
# Every SPARSE-th prefix of a run's sorted section is held in memory; a
# lookup reads the SPARSE entries between two of them (768 bytes).
SPARSE = 64


@dataclass
class _Run:
    """One pack's entries: ``count`` records at ``start`` in the file, in the
    order added, then the same entries sorted by id prefix (``_SORTED``,
    prefix and position) -- of which every SPARSE-th prefix is held here.

    The sorted prefixes and positions were all held in memory, 12 bytes an
    entry: a full backup of 2.3 million objects (a demo course of 3,000
    users and 930 activities) held 27 MB of them at its commit."""

    pack: bytes
    start: int
    count: int
    sparse: array[int]

    @property
    def sorted_at(self) -> int:
        return self.start + self.count * _REC.size


class PendingIndex:
    def __init__(self) -> None:
        # read and written through its descriptor only, so unnamed at once:
        # a session killed (SIGKILL, OOM) left its MBs in TMPDIR for good
        fd, path = tempfile.mkstemp(prefix="coursevault-pending-")
        os.unlink(path)
        self._fd = fd
        self._size = 0
        self._runs: list[_Run] = []
        self.count = 0
        # A Bloom filter in front of the runs: almost every object a session puts
        # is new, and "surely not pending" must cost no search.  Ids are hashes,
        # so three 8-byte slices of an id are three independent bit positions.
        self._bits = bytearray(BLOOM_BYTES)
        self._mask = len(self._bits) * 8 - 1
        # Ids :meth:`has` found: a course repeats some objects many times (the
        # generated 1 GB course puts 146,000 objects again, 885 distinct, each
        # a search of every pack's prefixes and a read: 0.7 s of its ingest,
        # 0.05 s with this).
        self._found: dict[bytes, None] = {}

    def might_have(self, oid: bytes) -> bool:
        bits, mask = self._bits, self._mask
        for b in _SLICES.unpack_from(oid):
            b &= mask
            if not bits[b >> 3] & (1 << (b & 7)):
                return False
        return True

    def _grow(self) -> None:
        """Keep at least 16 bits per entry (false positives under 0.2 %):
        a filter doubled (or more, to reach them), set again from the file's
        records, :data:`ADD_CHUNK` at a time."""
        size = len(self._bits) * 2
        while self.count * 16 > size * 8:
            size *= 2
        # the old filter let go first: it is rebuilt from the file, not from
        # it, and both at once were the peak of a big backup (4 + 8 MiB)
        self._bits = bytearray()
        self._bits = bits = bytearray(size)
        self._mask = mask = len(bits) * 8 - 1
        step = ADD_CHUNK * _REC.size
        for run, at in ((r, a) for r in self._runs for a in range(0, r.count * _REC.size, step)):
            data = os.pread(self._fd, min(step, run.count * _REC.size - at), run.start + at)
            for a, b, c in _REC_SLICES.iter_unpack(data):
                a &= mask
                bits[a >> 3] |= 1 << (a & 7)
                b &= mask
                bits[b >> 3] |= 1 << (b & 7)
                c &= mask
                bits[c >> 3] |= 1 << (c & 7)

    def add(self, pack: bytes, placed: Iterable[tuple[int, bytes, int, int, int, int]]) -> None:
        """Add one pack's entries, as ``PackWriter.iter_placed`` gives them:
        (type, id, block offset, block length, offset, length), in the order
        they should be listed at commit.

        Streamed, :data:`ADD_CHUNK` records at a time: a pack of 32,768
        small trees (a full backup's) took 9.9 MiB at once as a list of
        records, their join and a list of prefixes -- once per pack, and
        memory a small course never reaches."""
        record = _REC.pack
        bits, mask, slices = self._bits, self._mask, _SLICES.unpack_from
        start = self._size
        prefixes = array("Q")
        chunk: list[bytes] = []
        for t, oid, bo, bl, o, ln in placed:
            chunk.append(record(oid, t, bo, bl, o, ln))
            prefixes.append(int.from_bytes(oid[:8], "big"))
            for b in slices(oid):
                b &= mask
                bits[b >> 3] |= 1 << (b & 7)
            if len(chunk) == ADD_CHUNK:
                self._append(chunk)
        self._append(chunk)
        count = len(prefixes)
        if not count:
            return
        # sorted as one int each, the prefix above the position: sorting the
        # positions by a key list held both lists and the sorted prefixes'
        # list at once, 3.6 MiB for a pack of 32,768 (a full backup's peak)
        shift = count.bit_length()
        keyed = [p << shift | i for i, p in enumerate(prefixes)]
        del prefixes
        keyed.sort()
        low = (1 << shift) - 1
        sorted_record = _SORTED.pack
        for at in range(0, count, ADD_CHUNK):
            chunk.extend(sorted_record(k >> shift, k & low) for k in keyed[at : at + ADD_CHUNK])
            self._append(chunk)
        sparse = array("Q", (k >> shift for k in keyed[::SPARSE]))
        del keyed
        self._runs.append(_Run(pack, start, count, sparse))
        self.count += count
        if self.count * 16 > len(self._bits) * 8:
            self._grow()

    def _append(self, records: list[bytes]) -> None:
        """Write ``records`` at the end of the file, and empty the list."""
        if records:
            buf = b"".join(records)
            os.pwrite(self._fd, buf, self._size)
            self._size += len(buf)
            records.clear()

    def has(self, oid: bytes) -> bool:
        """Whether the object is pending (what a writer asks of every object)."""
        if not self.count or not self.might_have(oid):
            return False
        if oid in self._found:
            return True
        if self.lookup(oid) is None:
            return False
        if len(self._found) >= FOUND_MAX:
            self._found.clear()
        self._found[oid] = None
        return True

    def lookup(self, oid: bytes) -> Location | None:
        key = int.from_bytes(oid[:8], "big")
        for run in self._runs:
            found = self._lookup_run(run, key, oid)
            if found is not None:
                return found
        return None

    def _lookup_run(self, run: _Run, key: int, oid: bytes) -> Location | None:
        """``oid`` in one run: the sorted entries from the SPARSE before the
        first held prefix not below ``key``, read until they pass it."""
        size, fd = _REC.size, self._fd
        entry = max(bisect_left(run.sparse, key) - 1, 0) * SPARSE
        while entry < run.count:
            n = min(SPARSE, run.count - entry)
            data = os.pread(fd, n * _SORTED.size, run.sorted_at + entry * _SORTED.size)
            for prefix, position in _SORTED.iter_unpack(data):
                if prefix > key:
                    return None
                if prefix == key:
                    rec = _REC.unpack(os.pread(fd, size, run.start + position * size))
                    if rec[0] == oid:
                        return Location(TYPES[rec[1]], run.pack, *rec[2:])
            entry += n
        return None

    def __iter__(self) -> Iterator[tuple[bytes, Location]]:
        for oid, t, pack, boff, blen, off, ln in self.rows():
            yield oid, Location(TYPES[t], pack, boff, blen, off, ln)

    def rows(self) -> Iterator[Row]:
        """Every entry as an index row, in the order added."""
        for run in self._runs:
            data = os.pread(self._fd, run.count * _REC.size, run.start)
            pack = run.pack
            for oid, t, boff, blen, off, ln in _REC.iter_unpack(data):
                yield oid, t, pack, boff, blen, off, ln

    def close(self) -> None:
        os.close(self._fd)
