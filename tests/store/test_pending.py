"""A write session's index of what it wrote but has not committed."""

from __future__ import annotations

import os

from coursevault.store import pending
from coursevault.store.ids import ObjectType
from coursevault.store.pending import PendingIndex


def _placed(ids: list[bytes]) -> list[tuple[int, bytes, int, int, int, int]]:
    return [(int(ObjectType.TREE), oid, 64, 100, i * 10, 10) for i, oid in enumerate(ids)]


def test_has_finds_every_pending_object_and_no_other(monkeypatch) -> None:
    monkeypatch.setattr(pending, "FOUND_MAX", 3)  # found ids forgotten and asked again
    index = PendingIndex()
    try:
        assert not index.has(os.urandom(32))  # empty
        packs = [[os.urandom(32) for _ in range(500)] for _ in range(3)]
        for n, ids in enumerate(packs):
            index.add(bytes([n]) * 32, _placed(ids))
        every = [oid for ids in packs for oid in ids]
        for _round in range(2):  # the second time from what has() kept
            assert all(index.has(oid) for oid in every[:10] + every[-10:])
        assert all(index.has(oid) for oid in every)
        assert not any(index.has(os.urandom(32)) for _ in range(2000))
        loc = index.lookup(packs[1][7])
        assert loc is not None and loc.pack == b"\x01" * 32 and loc.offset == 70
        assert [row[0] for row in index.rows()] == every
    finally:
        index.close()


def test_the_bloom_filter_grows_without_losing_an_entry(monkeypatch) -> None:
    monkeypatch.setattr(pending, "BLOOM_BYTES", 64)  # 512 bits: grows at 32 entries
    index = PendingIndex()
    try:
        ids = [os.urandom(32) for _ in range(3000)]
        for n in range(0, len(ids), 100):
            index.add(n.to_bytes(32, "big"), _placed(ids[n : n + 100]))
        assert len(index._bits) >= 3000 * 16 // 8  # 16 bits an entry at least
        assert all(index.might_have(oid) for oid in ids)
        assert all(index.has(oid) for oid in ids)
        strangers = [os.urandom(32) for _ in range(3000)]
        assert sum(index.might_have(oid) for oid in strangers) < 30  # under 1 %
        assert not any(index.has(oid) for oid in strangers)
    finally:
        index.close()


def test_a_growing_filter_is_never_held_twice(monkeypatch) -> None:
    """Rebuilt from the file's records, the new filter needs nothing of the
    old: a backup of 2.3 million objects held both, 4 and 8 MiB, at its peak."""
    import tracemalloc

    monkeypatch.setattr(pending, "BLOOM_BYTES", 1 << 22)  # 4 MiB
    tracemalloc.start()  # before the 4 MiB filter is made: it counts as held
    index = PendingIndex()
    try:
        ids = [os.urandom(32) for _ in range(1000)]
        index.add(b"\x01" * 32, _placed(ids))
        index.count = (1 << 22) * 8 // 16 + 1  # as many as a 4 MiB filter takes, and one
        tracemalloc.reset_peak()
        held = tracemalloc.get_traced_memory()[0]
        index._grow()
        peak = tracemalloc.get_traced_memory()[1]
        assert len(index._bits) == 1 << 23
        # the new 8 MiB in place of the old 4: 4 MiB more at most, not 8
        assert peak - held < (1 << 22) + (1 << 20), peak - held
        assert all(index.might_have(oid) for oid in ids)
    finally:
        tracemalloc.stop()
        index.close()


def test_a_small_session_s_filter_is_small() -> None:
    """The filter grows with the index: a night of a few new objects holds
    256 KiB of it, not the 4 MiB a write of 900,000 objects needs (it was
    4 MiB from the start, in every backup); past 131,072 entries it grows."""
    index = PendingIndex()
    try:
        ids = [os.urandom(32) for _ in range(200)]
        index.add(b"\x07" * 32, _placed(ids))
        assert len(index._bits) <= 256 * 1024
        assert all(index.has(oid) for oid in ids)
    finally:
        index.close()

def test_a_pack_is_added_as_it_comes_across_chunks(monkeypatch) -> None:
    """add() takes a pack's entries as a generator (PackWriter.iter_placed:
    no list of a whole pack) and writes them a chunk at a time; the entries,
    their order and every lookup are those of a pack given whole."""
    monkeypatch.setattr(pending, "ADD_CHUNK", 7)
    index = PendingIndex()
    try:
        ids = [os.urandom(32) for _ in range(100)]  # 14 chunks and a part
        index.add(b"\x05" * 32, (entry for entry in _placed(ids)))
        index.add(b"\x06" * 32, iter([]))  # a pack with nothing new: no run
        assert index.count == 100 and len(index._runs) == 1
        assert [row[0] for row in index.rows()] == ids
        for i in (0, 6, 7, 50, 99):
            loc = index.lookup(ids[i])
            assert loc is not None and loc.offset == i * 10 and loc.pack == b"\x05" * 32
        assert all(index.has(oid) for oid in ids)
    finally:
        index.close()


def test_adding_a_full_pack_holds_little_beside_its_entries() -> None:
    """A full backup flushes packs of 32,768 small trees: their prefixes
    were sorted by a key list, holding the positions, their keys and the
    sorted prefixes as lists at once (3.1 MiB traced here); sorted as one
    int each, 1.8 MiB.  Lookups find every entry."""
    import tracemalloc

    ids = [os.urandom(32) for _ in range(32_768)]
    entries = _placed(ids)
    index = PendingIndex()
    try:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            index.add(b"\x08" * 32, iter(entries))
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert peak < 2.4 * 2**20, f"{peak / 2**20:.2f} MiB"
        assert all(index.has(oid) for oid in ids[::97])
        assert index.lookup(ids[-1]) is not None and index.lookup(os.urandom(32)) is None
    finally:
        index.close()


def test_a_big_session_s_entries_wait_on_disk() -> None:
    """A session's entries are looked up from the file, through every
    SPARSE-th sorted prefix held in memory: all of them sorted in memory
    took 12 bytes an entry, 27 MB for a full backup of 2.3 million objects
    (768 KiB for the 65,536 here).  What the index holds is its Bloom filter."""
    import tracemalloc

    packs = [[os.urandom(32) for _ in range(16_384)] for _ in range(4)]
    index = PendingIndex()
    try:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for p, ids in enumerate(packs):
                index.add(bytes([p]) * 32, (entry for entry in _placed(ids)))
            held = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert index.count == 4 * 16_384
        assert held - len(index._bits) < 256 * 1024, f"{held / 2**20:.2f} MiB"
        for p, ids in enumerate(packs):
            for oid in ids[:: 4099]:
                loc = index.lookup(oid)
                assert loc is not None and loc.pack == bytes([p]) * 32
        assert index.lookup(os.urandom(32)) is None
    finally:
        index.close()


def test_ids_sharing_a_prefix_are_found_across_the_sparse_steps(monkeypatch) -> None:
    """Entries whose 8-byte prefixes are equal lie side by side in a run's
    sorted section, across several of its SPARSE steps: each is found, and
    an id of that prefix that is not pending is not."""
    monkeypatch.setattr(pending, "SPARSE", 4)
    index = PendingIndex()
    try:
        same = [b"\x42" * 8 + os.urandom(24) for _ in range(23)]
        ids = [os.urandom(32) for _ in range(40)] + same + [b"\x00" * 8 + os.urandom(24),
                                                            b"\xff" * 8 + os.urandom(24)]
        index.add(b"\x09" * 32, iter(_placed(ids)))
        for i, oid in enumerate(ids):
            loc = index.lookup(oid)
            assert loc is not None and loc.offset == i * 10, i
        assert index.lookup(b"\x42" * 8 + os.urandom(24)) is None
        assert index.lookup(b"\x00" * 32) is None and index.lookup(b"\xff" * 32) is None
        assert [row[0] for row in index.rows()] == ids
    finally:
        index.close()


def test_the_filter_is_at_most_twice_what_its_entries_need() -> None:
    """Grown fourfold, a filter of 140,000 entries took 1 MiB where 16 bits
    an entry are 274 KiB; doubled, 512 KiB (a full backup of 2.1 million
    objects: 8 MiB, not 16)."""
    index = PendingIndex()
    try:
        ids = [os.urandom(32) for _ in range(140_000)]
        for n in range(0, len(ids), 32_768):
            index.add(n.to_bytes(32, "big"), _placed(ids[n : n + 32_768]))
        assert 140_000 * 16 // 8 <= len(index._bits) <= 2 * 140_000 * 16 // 8
        assert all(index.has(oid) for oid in ids[::997])
    finally:
        index.close()
