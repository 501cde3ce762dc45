"""ObjectTable: every index entry, packed and sorted, as check and prune read it."""

from __future__ import annotations

import random
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from coursevault.store.ids import ObjectType
from coursevault.store.index import decode_index_table, encode_index
from coursevault.store.objecttable import ObjectTable
from coursevault.store.pack import Location


def _loc(rng: random.Random, packs: list[bytes]) -> Location:
    return Location(
        rng.choice(list(ObjectType)),
        rng.choice(packs),
        rng.randrange(1 << 40),
        rng.randrange(1 << 20),
        rng.randrange(1 << 20),
        rng.randrange(1 << 20),
    )


def _expected(entries: list[tuple[bytes, Location]]) -> dict[bytes, list[Location]]:
    by_id: dict[bytes, list[Location]] = defaultdict(list)
    for oid, loc in entries:
        by_id[oid].append(loc)
    return by_id


def _check(table: ObjectTable, entries: list[tuple[bytes, Location]]) -> None:
    expected = _expected(entries)
    assert len(table) == len(entries)
    assert table.unique == len(expected)
    for oid, locs in expected.items():
        rows = table.rows(oid)
        assert sorted(table.location(r) for r in rows) == sorted(locs)
        assert all(table.oid(r) == oid for r in rows)
        assert table.find(oid) == rows.start and oid in table
    seen = [table.oid(rows.start) for rows in table.objects()]
    assert sorted(seen) == sorted(expected) and seen == sorted(seen)  # in id order, once each
    # the fast iteration says what the accessors say
    for row, (oid, t, no, boff, blen, off, ln) in enumerate(table.entries()):
        loc = table.location(row)
        assert (oid, t, table.pack(no), boff, blen, off, ln) == table.index_row(row)
        assert (loc.pack, loc.offset, loc.length) == (table.pack(no), off, ln)
        assert table.place(row) == (no, boff, off) and table.type(row) == t


def test_copies_and_ids_sharing_a_prefix_are_kept_apart() -> None:
    rng = random.Random(7)
    packs = [rng.randbytes(32) for _ in range(5)]
    prefix = rng.randbytes(8)
    ids = [rng.randbytes(32) for _ in range(300)]
    ids += [prefix + rng.randbytes(24) for _ in range(4)]  # four ids, one prefix
    entries = [(oid, _loc(rng, packs)) for oid in ids]
    entries += [(rng.choice(ids), _loc(rng, packs)) for _ in range(80)]  # second copies
    entries += [(ids[-1], _loc(rng, packs)) for _ in range(3)]  # a shared prefix with copies
    rng.shuffle(entries)
    table = ObjectTable(entries)
    _check(table, entries)
    _check(_from_index_files(entries, 7), entries)
    assert table.rows(prefix + b"\0" * 24) == range(0)  # the prefix alone is not an id
    assert table.find(rng.randbytes(32)) == -1


def test_marks_cover_every_row_of_an_object() -> None:
    rng = random.Random(3)
    packs = [rng.randbytes(32)]
    a, b = rng.randbytes(32), rng.randbytes(32)
    table = ObjectTable([(a, _loc(rng, packs)), (b, _loc(rng, packs)), (a, _loc(rng, packs))])
    table.mark(table.rows(a), 2)
    assert [table.marks[r] for r in table.rows(a)] == [2, 2]
    assert table.marks[table.find(b)] == 0


def test_an_empty_index() -> None:
    table = ObjectTable([])
    assert len(table) == 0 and table.unique == 0 and list(table.objects()) == []
    assert table.find(b"\1" * 32) == -1


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 3)), max_size=200), st.randoms())
def test_any_mix_of_entries(picks: list[tuple[int, int]], rng: random.Random) -> None:
    # few distinct ids, several with one prefix: copies and prefix ties everywhere
    ids = [bytes([i % 3]) * 8 + bytes([i]) * 24 for i in range(41)]
    packs = [bytes([p]) * 32 for p in range(4)]
    entries = [(ids[i], _loc(rng, [packs[p]])) for i, p in picks]
    _check(ObjectTable(entries), entries)
    _check(_from_index_files(entries, 1 + len(picks) // 3), entries)


def _from_index_files(entries: list[tuple[bytes, Location]], parts: int) -> ObjectTable:
    """The table of ``entries`` written as ``parts`` index files, read back."""
    files = [encode_index(entries[i::parts])[1] for i in range(parts)]
    return ObjectTable.from_index_tables(decode_index_table(data) for data in files)


def test_index_files_of_many_packs_are_numbered_into_one_table() -> None:
    """An index file's pack numbers are its own: one byte up to 256 packs,
    more beyond; the table numbers them all as one."""
    rng = random.Random(11)
    packs = [rng.randbytes(32) for _ in range(300)]
    entries = [(rng.randbytes(32), _loc(rng, packs)) for _ in range(2000)]
    entries += [(entries[i][0], _loc(rng, packs[:3])) for i in range(0, 2000, 97)]  # copies
    for parts in (1, 2, 40):  # 300 packs in one file, about 250, few
        table = _from_index_files(entries, parts)
        _check(table, entries)
        assert table.pack_count == len({loc.pack for _oid, loc in entries})
