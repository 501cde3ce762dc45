"""Pack files and index files (store.pack, store.index)."""

from __future__ import annotations

import os
import random
import struct

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coursevault.store.ids import ObjectType, object_id
from coursevault.store.index import (
    INDEX_ENTRY,
    IndexFormatError,
    IndexTable,
    decode_index,
    encode_index,
    index_key,
)
from coursevault.store.pack import (
    BLOCK_HEAD,
    CODEC_RAW,
    CODEC_ZSTD,
    ENTRY,
    LARGE_OBJECT,
    PACK_HEADER,
    BlockReader,
    Location,
    PackFormatError,
    PackWriter,
    iter_blocks,
    iter_pack_objects,
    pack_key,
)

NODB = settings(
    database=None, deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)

kinds = st.sampled_from([ObjectType.BLOB, ObjectType.TREE])


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """Mixed payloads: empty, tiny, text-like (compressible) and random (incompressible)."""
    size = draw(st.one_of(st.integers(0, 16), st.integers(0, 3000)))
    style = draw(st.sampled_from(["random", "text", "hyp"]))
    if style == "hyp":
        return draw(st.binary(max_size=size))
    rng = random.Random(draw(st.integers(0, 2**32)))
    if style == "random":
        return rng.randbytes(size)
    return (b"<r a='%d'>forum post</r>" % rng.randrange(99)) * (size // 24)


def _blocks(data: bytes) -> list[tuple[int, int, int, int, int, int]]:
    """(offset, length, codec, stored_len, raw_len, n) of every block."""
    out = []
    for boff, blen in iter_blocks(data):
        _m, codec, stored, raw, n = BLOCK_HEAD.unpack_from(data, boff)
        out.append((boff, blen, codec, stored, raw, n))
    return out


# -- packs --------------------------------------------------------------------------------
@NODB
@given(
    st.lists(st.tuples(kinds, payloads()), max_size=40),
    st.integers(1, 4096),
)
def test_pack_round_trip(objects: list[tuple[ObjectType, bytes]], block_target: int) -> None:
    w = PackWriter(block_target, level=1)
    expected = []
    for kind, payload in objects:
        oid = object_id(kind, payload)
        if oid in w.where:  # the repository deduplicates before add()
            continue
        w.add(kind, oid, payload)
        expected.append((int(kind), oid, payload))
    pack_id, view = w.finish()
    data = bytes(view)  # finish() may hand out a view of its buffer

    import blake3

    assert pack_id == blake3.blake3(data).digest()
    assert data.startswith(PACK_HEADER)
    got = [
        (t, object_id(ObjectType(t), payload), payload)
        for _bo, _bl, t, _off, _ln, payload in iter_pack_objects(data)
    ]
    assert got == expected
    # blocks respect the target: a block only exceeds it by its last object
    for _boff, _blen, _codec, _stored, raw_len, n in _blocks(data):
        assert n >= 1
        assert raw_len < block_target + max((len(p) for _t, _o, p in expected), default=0)
    # w.placed describes exactly where iter_pack_objects found each object
    placed = {oid: (boff, blen, off, ln) for _t, oid, boff, blen, off, ln in w.placed}
    assert set(placed) == {oid for _t, oid, _p in expected}
    reader = BlockReader()
    for _t, oid, payload in expected:
        boff, blen, off, ln = placed[oid]
        raw, _entries = reader.decode(data[boff : boff + blen])
        assert raw[off : off + ln] == payload


def test_many_blocks_with_small_target() -> None:
    rng = random.Random(7)
    w = PackWriter(block_target=512, level=3)
    objs = []
    for i in range(200):
        p = f"object {i} ".encode() * rng.randrange(1, 40)
        oid = object_id(ObjectType.BLOB, p)
        w.add(ObjectType.BLOB, oid, p)
        objs.append((1, oid, p))
    data = bytes(w.finish()[1])
    assert len(_blocks(data)) > 20
    got = [(t, object_id(ObjectType(t), p), p) for _a, _b, t, _o, _l, p in iter_pack_objects(data)]
    assert got == objs


@NODB
@given(st.integers(0, 2**32), st.integers(1, 20_000), st.integers(1, 8192))
def test_incompressible_data_uses_raw_codec(seed: int, size: int, target: int) -> None:
    payload = random.Random(seed).randbytes(size)
    w = PackWriter(target, level=3)
    w.add(ObjectType.BLOB, object_id(ObjectType.BLOB, payload), payload)
    data = bytes(w.finish()[1])
    blocks = _blocks(data)
    assert len(blocks) == 1
    _boff, _blen, codec, stored, raw, n = blocks[0]
    assert (codec, n, raw) == (CODEC_RAW, 1, size)
    assert stored == raw  # stored as is: never bigger than the data
    assert data.endswith(payload)


def test_large_objects_get_blocks_of_their_own_in_big_blocks() -> None:
    """With 1 MiB blocks, small objects share blocks, but an object of
    LARGE_OBJECT bytes or more (file content) is sealed alone: stored raw
    when incompressible, never compressed into a block of records."""
    rng = random.Random(3)
    w = PackWriter(1 << 20, level=3)
    small = [f"<post id='{i}'>{'text ' * 40}</post>".encode() for i in range(600)]
    big = rng.randbytes(LARGE_OBJECT + 1000)
    order = [*small[:300], big, *small[300:]]
    for payload in order:
        w.add(ObjectType.BLOB, object_id(ObjectType.BLOB, payload), payload)
    data = bytes(w.finish()[1])
    blocks = _blocks(data)
    assert [n for *_x, n in blocks] == [300, 1, 300]
    assert blocks[1][2] == CODEC_RAW and blocks[1][4] == len(big)
    got = [p for *_x, p in iter_pack_objects(data)]
    assert got == order


def test_compressible_data_uses_zstd() -> None:
    payload = b"<question><text>What is 2+2?</text></question>\n" * 500
    w = PackWriter(1 << 20, level=3)
    w.add(ObjectType.BLOB, object_id(ObjectType.BLOB, payload), payload)
    data = bytes(w.finish()[1])
    [(_boff, _blen, codec, stored, raw, _n)] = _blocks(data)
    assert codec == CODEC_ZSTD
    assert stored < raw // 10


def test_pack_key_layout() -> None:
    pid = bytes(range(32))
    assert pack_key(pid) == f"packs/00/{pid.hex()}"
    assert index_key(pid) == f"index/{pid.hex()}"


# -- block reader -------------------------------------------------------------------------
def _one_block(payload: bytes) -> bytes:
    w = PackWriter(1 << 20, level=3)
    w.add(ObjectType.BLOB, object_id(ObjectType.BLOB, payload), payload)
    data = bytes(w.finish()[1])
    return data[len(PACK_HEADER) :]


@pytest.mark.parametrize("kind", ["zstd", "raw"])
@pytest.mark.parametrize("pos", range(BLOCK_HEAD.size))
@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_block_reader_rejects_flipped_header_byte(kind: str, pos: int, mask: int) -> None:
    payload = b"abcdefgh" * 2000 if kind == "zstd" else random.Random(pos).randbytes(5000)
    block = _one_block(payload)
    raw, entries = BlockReader().decode(block)
    assert raw == payload and len(entries) == 1
    bad = bytearray(block)
    bad[pos] ^= mask
    with pytest.raises(PackFormatError):
        BlockReader().decode(bytes(bad))


def test_block_reader_rejects_short_and_padded_blocks() -> None:
    block = _one_block(b"x" * 1000)
    reader = BlockReader()
    with pytest.raises(PackFormatError):
        reader.decode(block[: BLOCK_HEAD.size - 1])
    with pytest.raises(PackFormatError):
        reader.decode(block[:-1])
    with pytest.raises(PackFormatError):
        reader.decode(block + b"\0")


def test_iter_blocks_rejects_bad_magic_version_and_truncation() -> None:
    w = PackWriter(64, level=3)
    for i in range(10):
        p = b"%d" % i * 50
        w.add(ObjectType.BLOB, object_id(ObjectType.BLOB, p), p)
    data = bytes(w.finish()[1])
    assert len(list(iter_blocks(data))) == 10
    with pytest.raises(PackFormatError, match="magic"):
        list(iter_blocks(b"XVPK" + data[4:]))
    with pytest.raises(PackFormatError, match="version"):
        list(iter_blocks(data[:4] + b"\x03" + data[5:]))
    for cut in (len(data) - 1, len(data) - 30, len(PACK_HEADER) + 3):
        with pytest.raises(PackFormatError, match="truncated"):
            list(iter_blocks(data[:cut]))


def test_iter_blocks_rejects_pack_cut_to_its_magic() -> None:
    """Regression: data[4] of a 4-byte pack used to raise IndexError."""
    with pytest.raises(PackFormatError):
        list(iter_blocks(b"CVPK"))


def test_block_reader_rejects_corrupt_frame_content_size() -> None:
    """Regression: zstandard trusted the frame's content size and raised MemoryError."""
    payload = b"hello world " * 8000
    block = _one_block(payload)
    n = BLOCK_HEAD.unpack_from(block, 0)[4]
    frame = BLOCK_HEAD.size + n * ENTRY.size
    assert block[frame : frame + 4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic
    bad = bytearray(block)
    bad[frame + 4] ^= 0x40  # frame header descriptor: content-size field becomes 8 bytes
    with pytest.raises(PackFormatError):
        BlockReader().decode(bytes(bad))


# -- index files --------------------------------------------------------------------------
locations = st.builds(
    Location,
    st.sampled_from(list(ObjectType)),
    st.sampled_from([bytes([i]) * 32 for i in range(5)]),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
entries_st = st.lists(st.tuples(st.binary(min_size=32, max_size=32), locations), max_size=60)


@NODB
@given(entries_st)
def test_index_round_trip(entries: list[tuple[bytes, Location]]) -> None:
    idx_id, data = encode_index(entries)
    import blake3

    assert idx_id == blake3.blake3(data).digest()
    assert list(decode_index(data)) == entries
    # every pack is listed once (in the zstd-compressed body)
    plain = zstandard.ZstdDecompressor().decompress(data[8:])
    (n_packs,) = struct.unpack_from("<I", plain, 0)
    assert n_packs == len({loc.pack for _o, loc in entries})


@NODB
@given(entries_st)
def test_an_index_table_is_the_index_file_and_its_rows_in_id_order(
    entries: list[tuple[bytes, Location]],
) -> None:
    """A commit packs its entries into an IndexTable as it reads them (no
    list of a file's rows): the same file as encode_index, and the rows the
    catalog inserts are the entries sorted by id."""
    table = IndexTable()
    rows = [(oid, int(loc.type), loc.pack, *loc[2:]) for oid, loc in entries]
    for row in rows:
        table.add(row)
    assert table.count == len(entries)
    assert table.encode() == encode_index(entries)
    assert [row[0] for row in table.sorted_rows()] == sorted(oid for oid, _loc in entries)
    assert sorted(table.sorted_rows()) == sorted(rows)


@NODB
@given(entries_st, st.data())
def test_decode_index_rejects_truncation(
    entries: list[tuple[bytes, Location]], data: st.DataObject
) -> None:
    _id, raw = encode_index(entries)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(IndexFormatError):
        list(decode_index(raw[:cut]))


@NODB
@given(entries_st, st.binary(min_size=1, max_size=40))
def test_decode_index_rejects_trailing_garbage(
    entries: list[tuple[bytes, Location]], extra: bytes
) -> None:
    _id, raw = encode_index(entries)
    with pytest.raises(IndexFormatError):
        list(decode_index(raw + extra))


@NODB
@given(entries_st, st.integers(0, 3), st.integers(1, 255))
def test_decode_index_rejects_bad_magic(
    entries: list[tuple[bytes, Location]], pos: int, mask: int
) -> None:
    _id, raw = encode_index(entries)
    bad = bytearray(raw)
    bad[pos] ^= mask
    with pytest.raises(IndexFormatError, match="magic"):
        list(decode_index(bytes(bad)))


def test_decode_index_rejects_bad_version_type_and_pack_number() -> None:
    loc = Location(ObjectType.BLOB, b"p" * 32, 8, 100, 0, 10)
    _id, raw = encode_index([(b"o" * 32, loc)])
    with pytest.raises(IndexFormatError, match="version"):
        list(decode_index(raw[:4] + b"\x07" + raw[5:]))
    # the body is a zstd frame: damage the plain body, then compress it again
    plain = bytearray(zstandard.ZstdDecompressor().decompress(raw[8:]))
    entry_at = len(plain) - INDEX_ENTRY.size
    # the type byte; pack number 1 of 1; pack number 65,536 (its third byte)
    for offset, value in ((entry_at + 32, 9), (entry_at + 33, 1), (entry_at + 35, 1)):
        bad = bytearray(plain)
        bad[offset] = value
        with pytest.raises(IndexFormatError):
            list(decode_index(raw[:8] + zstandard.ZstdCompressor().compress(bytes(bad))))
    with pytest.raises(IndexFormatError):
        list(decode_index(raw[:8] + b"not zstd at all"))
    assert list(decode_index(encode_index([])[1])) == []


def test_decode_index_checks_pack_numbers_past_one_byte() -> None:
    """An index file of more than 256 packs: its numbers take two bytes."""
    packs = [bytes([i % 256, i // 256]) * 16 for i in range(300)]
    entries = [(bytes([i % 256, i // 256]) * 16, Location(ObjectType.TREE, p, 0, 9, 0, 9))
               for i, p in enumerate(packs)]  # fmt: skip
    _id, raw = encode_index(entries)
    assert [loc.pack for _oid, loc in decode_index(raw)] == packs
    plain = bytearray(zstandard.ZstdDecompressor().decompress(raw[8:]))
    entry_at = len(plain) - INDEX_ENTRY.size
    plain[entry_at + 33 : entry_at + 37] = (300).to_bytes(4, "little")  # one past the last
    with pytest.raises(IndexFormatError, match="unknown pack"):
        list(decode_index(raw[:8] + zstandard.ZstdCompressor().compress(bytes(plain))))


def test_a_large_object_stored_already_does_not_seal_the_open_block() -> None:
    """A night's unchanged file contents come between its few new records: a
    known large object is dropped without cutting them into small blocks
    (which compress worse: the night's growth would not be the same as when
    the session held them in one block)."""
    known_big = object_id(ObjectType.BLOB, b"x" * 200_000)
    w = PackWriter(1 << 20, level=3, known=lambda oids: {o for o in oids if o == known_big})
    small = [os.urandom(100) for _ in range(4)]
    for data in small[:2]:
        w.add(ObjectType.BLOB, object_id(ObjectType.BLOB, data), data)
    w.add(ObjectType.BLOB, known_big, b"x" * 200_000)
    for data in small[2:]:
        w.add(ObjectType.BLOB, object_id(ObjectType.BLOB, data), data)
    w.flush_block()
    assert (w.dropped_objects, w.dropped_bytes) == (1, 200_000)
    assert len({block for _t, _oid, block, *_rest in w.placed}) == 1


def test_objects_dropped_as_known_leave_the_rest_readable_in_order() -> None:
    """drop_known makes the open block's slots anew: what stays must read
    back as added, before and after the block is sealed, in the order added."""
    datas = [os.urandom(50 + i) for i in range(40)]
    oids = [object_id(ObjectType.BLOB, d) for d in datas]
    known = set(oids[::3])
    w = PackWriter(1 << 20, level=3, known=lambda ask: {o for o in ask if o in known})
    reader, cache = BlockReader(), {}
    for oid, data in zip(oids[:20], datas[:20], strict=True):
        w.add(ObjectType.BLOB, oid, data)
    w.drop_known()
    for oid, data in zip(oids[20:], datas[20:], strict=True):
        w.add(ObjectType.BLOB, oid, data)
    kept = [(o, d) for o, d in zip(oids, datas, strict=True) if o not in known]
    assert all(w.read(o, reader, cache) == (int(ObjectType.BLOB), d) for o, d in kept)
    w.flush_block()
    assert w.objects == len(kept) and w.dropped_objects == len(known)
    assert all(w.read(o, reader, cache) == (int(ObjectType.BLOB), d) for o, d in kept)
    assert all(w.read(o, reader, cache) is None for o in known)
    assert [oid for _t, oid, *_rest in w.placed] == [o for o, _d in kept]
    _pack_id, data = w.finish()
    found = [bytes(raw) for *_place, raw in iter_pack_objects(bytes(data))]
    assert found == [d for _o, d in kept]


def test_a_full_pack_s_map_of_its_objects_stays_small() -> None:
    """The writer's map of where its objects are is held until the pack is
    written: at 32,768 small trees it was 4.9 MiB as a dict of 5-tuples (and
    set a big course's peak, docs/benchmarks.md 9b); as slots in flat arrays
    it is 3.2 MiB.  The ids themselves are the caller's and not counted."""
    import tracemalloc

    payloads = [os.urandom(40) + bytes(i % 200) for i in range(32_768)]
    oids = [object_id(ObjectType.TREE, p) for p in payloads]
    tracemalloc.start()
    try:
        w = PackWriter(4 << 20, level=3)
        for oid, payload in zip(oids, payloads, strict=True):
            w.add(ObjectType.TREE, oid, payload)
        w.flush_block()
        held = tracemalloc.get_traced_memory()[0] - w.size
    finally:
        tracemalloc.stop()
    assert w.objects == 32_768
    assert held < 3.6 * 2**20, f"{held / 2**20:.2f} MiB"


def test_encoding_a_full_index_file_holds_no_copy_of_its_table() -> None:
    """A commit encodes index files of 32,768 entries (1.8 MiB as a table):
    the body was copied out of the table to be compressed and the file
    copied again once framed, 4.7 MiB beside the table at the peak here;
    compressed from the table itself, what is made is zstd's output (sized
    for the worst case until it is done) and the file: 3.0 MiB."""
    import tracemalloc

    rng = random.Random(5)
    packs = [rng.randbytes(32) for _ in range(12)]
    table = IndexTable()
    for i in range(32_768):
        table.add((rng.randbytes(32), 1, packs[i // 2731], i * 997, 40_000, i % 977, 60))
    before = bytes(table.table)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        _idx_id, data = table.encode()
        extra = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert bytes(table.table) == before
    assert extra < 2 * len(before), f"{extra / 2**20:.2f} MiB beside the table"
    size = INDEX_ENTRY.size
    assert [oid for oid, _loc in decode_index(data)] == [
        before[i : i + 32] for i in range(0, len(before), size)
    ]


def test_an_object_added_twice_is_stored_and_listed_once() -> None:
    """Ids are content hashes: a second add of one (a copier given an object
    twice) is the same bytes, kept once and placed once."""
    data = os.urandom(300)
    oid = object_id(ObjectType.BLOB, data)
    w = PackWriter(1 << 20, level=3)
    w.add(ObjectType.BLOB, oid, data)
    w.add(ObjectType.BLOB, oid, data)
    w.flush_block()
    assert w.objects == 1 and [o for _t, o, *_rest in w.placed] == [oid]
    _pack_id, packed = w.finish()
    assert [bytes(raw) for *_place, raw in iter_pack_objects(bytes(packed))] == [data]
