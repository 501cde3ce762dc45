"""Record groups (snapshot.nodes): the ``R`` node that holds most of a backup."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from coursevault.snapshot.nodes import Record, decode_group, encode_group
from coursevault.store.ids import ID_SIZE
from coursevault.store.treecodec import write_varint

NODB = settings(database=None, deadline=None, max_examples=80)

ids = st.binary(min_size=ID_SIZE, max_size=ID_SIZE)
# body lengths around the one-, two- and three-byte varints that encode_group
# writes inline or hands on
edges = st.sampled_from([0, 1, 127, 128, 129, 16383, 16384, 16385, 70000])
bodies = st.one_of(st.binary(max_size=300), edges.map(lambda n: b"x" * n))
records = st.lists(st.tuples(st.lists(ids, max_size=3), bodies), min_size=1, max_size=12)


def _plain(group: list[tuple[list[bytes], bytes]]) -> tuple[list[bytes], bytes]:
    """The group's layout written out with nothing inlined: count, then each
    record's reference count, length and body, all varints minimal."""
    out = bytearray(b"R")
    write_varint(out, len(group))
    refs: list[bytes] = []
    for rrefs, body in group:
        write_varint(out, len(rrefs))
        write_varint(out, len(body))
        out += body
        refs.extend(rrefs)
    return refs, bytes(out)


@NODB
@given(records)
def test_group_bytes_are_the_layout_and_decode_back(group: list[tuple[list[bytes], bytes]]) -> None:
    refs, body = encode_group(group)
    assert (refs, body) == _plain(group)
    assert list(decode_group(refs, body)) == [Record(r, b) for r, b in group]


def test_a_many_referencing_record_keeps_its_references_in_order() -> None:
    many = [bytes([i]) * ID_SIZE for i in range(130)]  # a reference count past one byte
    group = [([], b"X\x00a"), (many, b"X\x00b" * 6000), ([many[0]], b"")]
    refs, body = encode_group(group)
    assert refs == [*many, many[0]]
    assert (refs, body) == _plain(group)
    assert [r.refs for r in decode_group(refs, body)] == [[], many, [many[0]]]
