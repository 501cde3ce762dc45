"""Object ids and the tree envelope codec (store.ids, store.treecodec)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coursevault.store.ids import ID_SIZE, ObjectType, from_hex, id_hasher, object_id, to_hex
from coursevault.store.treecodec import (
    decode_tree,
    encode_tree,
    read_varint,
    tree_refs,
    write_varint,
)

# no example database: tests must not write outside tmp directories
NODB = settings(database=None, deadline=None, max_examples=60)

ids = st.binary(min_size=ID_SIZE, max_size=ID_SIZE)
U64 = 2**64 - 1


# -- object ids ---------------------------------------------------------------------------
@NODB
@given(st.binary(max_size=2048))
def test_object_id_differs_across_types(payload: bytes) -> None:
    found = {object_id(t, payload) for t in ObjectType}
    assert len(found) == len(ObjectType)
    assert all(len(oid) == ID_SIZE for oid in found)


@NODB
@given(st.sampled_from(list(ObjectType)), st.binary(max_size=512), st.binary(max_size=512))
def test_object_id_is_a_function_of_type_and_payload(kind: ObjectType, a: bytes, b: bytes) -> None:
    assert object_id(kind, a) == object_id(kind, memoryview(a))
    assert (object_id(kind, a) == object_id(kind, b)) == (a == b)


@settings(max_examples=200)
@given(st.sampled_from(list(ObjectType)), st.binary(max_size=64), st.binary(max_size=300))
def test_id_hasher_gives_the_object_id(kind: ObjectType, head: bytes, rest: bytes) -> None:
    """The hot paths' hasher and object_id are one definition of an id."""
    h = id_hasher(kind, head)()
    h.update(rest)
    assert h.digest() == object_id(kind, head + rest)


def test_object_id_known_value() -> None:
    # blake3 of the tag byte followed by the payload: pins the on-disk id format
    import blake3

    assert object_id(ObjectType.BLOB, b"abc") == blake3.blake3(b"\x01abc").digest()
    assert object_id(ObjectType.TREE, b"abc") == blake3.blake3(b"\x02abc").digest()


@NODB
@given(ids)
def test_hex_round_trip(oid: bytes) -> None:
    text = to_hex(oid)
    assert len(text) == 2 * ID_SIZE
    assert from_hex(text) == oid
    assert from_hex(text.upper()) == oid


@NODB
@given(st.binary(max_size=80).filter(lambda b: len(b) != ID_SIZE))
def test_from_hex_rejects_bad_lengths(raw: bytes) -> None:
    with pytest.raises(ValueError):
        from_hex(raw.hex())


@pytest.mark.parametrize(
    "text",
    ["", "0", "abc", "g" * 64, "0" * 63, "0" * 65, "0x" + "0" * 62, " " + "0" * 63, "zz" * 32],
)
def test_from_hex_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        from_hex(text)


# -- varints ------------------------------------------------------------------------------
@NODB
@given(st.one_of(st.integers(0, 300), st.integers(0, U64), st.sampled_from([0, 127, 128, U64])))
def test_varint_round_trip(value: int) -> None:
    out = bytearray(b"prefix")
    write_varint(out, value)
    out += b"suffix"
    got, pos = read_varint(bytes(out), len(b"prefix"))
    assert got == value
    assert out[pos:] == b"suffix"
    # minimal length: 7 bits per byte
    assert pos - len(b"prefix") == max(1, (value.bit_length() + 6) // 7)


@NODB
@given(st.integers(128, U64), st.data())
def test_varint_truncated_raises(value: int, data: st.DataObject) -> None:
    out = bytearray()
    write_varint(out, value)
    cut = data.draw(st.integers(0, len(out) - 1))
    with pytest.raises(ValueError):
        read_varint(bytes(out[:cut]), 0)


def test_varint_rejects_negative_and_overlong() -> None:
    with pytest.raises(ValueError):
        write_varint(bytearray(), -1)
    with pytest.raises(ValueError):
        read_varint(b"\xff" * 11 + b"\x01", 0)
    with pytest.raises(ValueError):
        read_varint(b"", 0)


@NODB
@given(st.lists(st.integers(0, U64), max_size=20))
def test_varint_sequence(values: list[int]) -> None:
    out = bytearray()
    for v in values:
        write_varint(out, v)
    pos, got = 0, []
    while pos < len(out):
        v, pos = read_varint(bytes(out), pos)
        got.append(v)
    assert got == values


# -- trees --------------------------------------------------------------------------------
@NODB
@given(st.lists(ids, max_size=300), st.binary(max_size=1000))
def test_tree_round_trip(refs: list[bytes], body: bytes) -> None:
    payload = encode_tree(refs, body)
    assert decode_tree(payload) == (refs, body)
    assert tree_refs(payload) == refs


@NODB
@given(st.lists(ids, min_size=1, max_size=50), st.binary(max_size=20), st.data())
def test_tree_truncated_ref_list_raises(
    refs: list[bytes], body: bytes, data: st.DataObject
) -> None:
    payload = encode_tree(refs, body)
    header = len(payload) - len(body) - len(refs) * ID_SIZE
    cut = data.draw(st.integers(0, header + len(refs) * ID_SIZE - 1))
    with pytest.raises(ValueError):
        decode_tree(payload[:cut])


def test_tree_type_tag_separates_tree_from_blob() -> None:
    payload = encode_tree([], b"same bytes")
    assert object_id(ObjectType.TREE, payload) != object_id(ObjectType.BLOB, payload)
