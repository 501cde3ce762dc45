"""Content-defined chunking of long lists of ids (a "prolly tree").

A run of 100,000 sibling records must not be one object: inserting one record
would rewrite it all.  Instead the ids are cut into chunks where an id's hash
hits a boundary pattern -- a decision that depends only on that id, so an
insertion moves no other boundary -- and the chunks' ids are chunked the same
way one level up.  Inserting one record rewrites one chunk per level
(about log_16 n small objects).  Memory is one open chunk per level.

Fan-out 16 rather than 64: a changed chunk is rewritten whole, and its ids do
not compress, so smaller chunks cost less per change.  Measured with
benchmarks/ingest_bench.py's courses: night-2 growth 113 -> 101 KB at 10 MB of
XML and 241 -> 196 KB at 100 MB; fan-out 8 gained nothing more.
"""

from __future__ import annotations

from typing import Any

from coursevault.store.ids import ObjectId
from coursevault.tree.nodes import encode_group, encode_list
from coursevault.tree.sink import ObjectSink

AVG_FANOUT = 16  # boundary probability 1/16
MIN_FANOUT = 2
MAX_FANOUT = 128


def _ids(text: str) -> list[ObjectId]:
    """Ids from their concatenated hex (as :meth:`ListBuilder.state` keeps them)."""
    raw = bytes.fromhex(text)
    if len(raw) % 32:
        raise ValueError("ids: not a multiple of 32 bytes")
    return [raw[i : i + 32] for i in range(0, len(raw), 32)]


def is_boundary(oid: ObjectId) -> bool:
    return (oid[28] | (oid[29] << 8)) % AVG_FANOUT == 0


class ListBuilder:
    """Streams ids in order; ``finish`` returns the list's root id.

    ``base_level`` numbers the chunks' levels from there (1 above record groups).
    """

    def __init__(self, sink: ObjectSink, base_level: int = 0) -> None:
        self._sink = sink
        self._base = base_level
        self._levels: list[list[ObjectId]] = [[]]
        self.count = 0

    def append(self, oid: ObjectId) -> None:
        self.count += 1
        self._add(0, oid)

    def _add(self, level: int, oid: ObjectId) -> None:
        items = self._levels[level]
        items.append(oid)
        if (len(items) >= MIN_FANOUT and is_boundary(oid)) or len(items) >= MAX_FANOUT:
            chunk = self._sink.put_tree(list(items), encode_list(level + self._base))
            items.clear()
            if level + 1 == len(self._levels):
                self._levels.append([])
            self._add(level + 1, chunk)

    def state(self) -> dict[str, Any]:
        """What resuming needs (see XmlChunker.checkpoint): the open chunks' ids."""
        levels = [b"".join(lv).hex() for lv in self._levels]  # one string a level
        return {"levels": levels, "count": self.count, "base": self._base}

    @classmethod
    def resume(cls, sink: ObjectSink, state: dict[str, Any]) -> ListBuilder:
        b = cls(sink, int(state["base"]))
        b._levels = [_ids(lv) for lv in state["levels"]]
        b.count = int(state["count"])
        return b

    def finish(self) -> ObjectId:
        """Close the open chunks; a list of one item is that item itself."""
        if self.count == 0:
            raise ValueError("empty list")
        level = 0
        while True:
            items = self._levels[level]
            higher = any(self._levels[j] for j in range(level + 1, len(self._levels)))
            if not higher and len(items) == 1:
                return items[0]
            if items:
                chunk = self._sink.put_tree(list(items), encode_list(level + self._base))
                items.clear()
                if level + 1 == len(self._levels):
                    self._levels.append([])
                self._levels[level + 1].append(chunk)
            level += 1


GROUP_BYTES = 2048  # records per group: about this many bytes of them
GROUP_MAX = 64
GROUP_MAX_BYTES = 256 * 1024


def is_group_boundary(rid: ObjectId, size: int) -> bool:
    """End a group after this record with probability size / GROUP_BYTES: groups
    average about GROUP_BYTES of records, however small or large the records,
    and the decision depends on this record alone."""
    return int.from_bytes(rid[28:32], "little") % GROUP_BYTES < size


class RecordListBuilder:
    """Streams a run's records in order into ``R`` groups, and the groups' ids
    into a :class:`ListBuilder` one level up; ``finish`` returns the run's root.

    A group ends after a record whose id hits the boundary pattern (or at 64
    records or 256 KiB), so inserting a record rewrites one group and one
    chunk per level above.  A record in a group costs no object, no index
    entry and no 32-byte reference of its own, which were most of a night's
    bytes.  Measured (benchmarks/ingest_bench.py, dedup_bench.py) against one
    object per record: the 100 MB course's night 1 stores 26.5 MB instead of
    29.4 and its night 2 154 kB instead of 196; 30 nights of the moodle2cc and
    simplecertificate courses 0.3 % and 0.7 % less.  Groups of 1 KB gained
    less on big courses, of 4 KB lost on small ones; 4 records a group (not
    bytes) lost 7 % on the small courses.
    """

    def __init__(self, sink: ObjectSink) -> None:
        self._sink = sink
        self._records: list[tuple[list[ObjectId], bytes]] = []
        self._bytes = 0
        self._upper = ListBuilder(sink, base_level=1)
        self.count = 0

    def append(self, rid: ObjectId, refs: list[ObjectId], body: bytes) -> None:
        self.count += 1
        self._records.append((refs, body))
        self._bytes += len(body)
        if (
            is_group_boundary(rid, len(body))
            or len(self._records) >= GROUP_MAX
            or self._bytes >= GROUP_MAX_BYTES
        ):
            self._flush()

    def state(self) -> dict[str, Any]:
        """What resuming needs: the open group's records and the chunks above."""
        return {
            "records": [[b"".join(refs).hex(), body.hex()] for refs, body in self._records],
            "upper": self._upper.state(),
            "count": self.count,
        }

    @classmethod
    def resume(cls, sink: ObjectSink, state: dict[str, Any]) -> RecordListBuilder:
        b = cls(sink)
        for refs, body in state["records"]:
            b._records.append((_ids(refs), bytes.fromhex(body)))
            b._bytes += len(b._records[-1][1])
        b._upper = ListBuilder.resume(sink, state["upper"])
        b.count = int(state["count"])
        return b

    def _flush(self) -> None:
        refs, body = encode_group(self._records)
        self._records.clear()
        self._bytes = 0
        self._upper.append(self._sink.put_tree(refs, body))

    def finish(self) -> ObjectId:
        if self._records:
            self._flush()
        return self._upper.finish()
