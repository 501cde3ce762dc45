"""Record groups (tree.nodes): the ``R`` node that holds most of a backup."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from coursevault.store.ids import ID_SIZE
from coursevault.store.treecodec import write_varint
from coursevault.tree.nodes import Record, decode_group, encode_group

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


def _document_trees(doc: bytes) -> tuple[Any, Any, bytes, bytes]:
    """``doc`` cut and stored: (the sink, the cut, its ``D`` node naming its
    length, one naming only its root as ``D`` nodes did before)."""
    from helpers import MemSink

    from coursevault.tree.xmltree import XmlChunker

    sink = MemSink()
    chunker = XmlChunker(sink)
    chunker.feed(doc)
    result = chunker.close()
    return sink, result, result.store(sink), sink.put_tree([result.root], result.body)


def test_a_document_names_its_length_and_older_ones_read_as_unknown() -> None:
    """``D`` nodes name how many bytes they render to (format.md, "Document
    length"), read without rendering; those written before name only their
    root, and render the same."""
    import pytest

    from coursevault.store.ids import ObjectType
    from coursevault.tree.nodes import NodeFormatError, document_length, encode_document
    from coursevault.tree.render import render_document

    doc = b'<?xml version="1.0"?>\n<a>\n  <b id="1"><c>x</c></b>\n  <b id="2"><c>y</c></b>\n</a>\n'
    sink, result, new, old = _document_trees(doc)
    assert document_length(sink.get, new) == len(doc)
    assert document_length(sink.get, old) is None
    for tree in (new, old):
        out = bytearray()
        render_document(sink.get, tree, out.extend)
        assert bytes(out) == doc
    bad = sink.put_tree(
        [result.root, sink.put(ObjectType.BLOB, b"\x85")], encode_document(b"", b"")
    )
    with pytest.raises(NodeFormatError):
        document_length(sink.get, bad)
    with pytest.raises(NodeFormatError):
        document_length(sink.get, result.root)  # an X node


def test_document_has_length_reads_only_the_document_node() -> None:
    """The one-read check ingest makes of a tree it takes from the catalog
    says what reading the length blob says -- under plain and keyed ids --
    and reads nothing but the ``D`` node."""
    import pytest
    from helpers import MemSink

    from coursevault.store.ids import use_id_key
    from coursevault.tree.nodes import NodeFormatError, document_has_length

    doc = b'<?xml version="1.0"?>\n<a>\n  <b id="1"><c>x</c></b>\n</a>\n'
    for key in (None, bytes(range(32))):
        use_id_key(key)
        try:
            sink, result, new, old = _document_trees(doc)
            read: list[bytes] = []

            def get(oid: bytes, sink: MemSink = sink, read: list[bytes] = read) -> tuple:
                read.append(oid)
                return sink.get(oid)

            assert document_has_length(get, new, len(doc))
            assert read == [new]
            assert not document_has_length(get, new, len(doc) + 1)
            assert not document_has_length(get, new, len(doc) - 1)
            assert not document_has_length(get, old, len(doc))  # names no length
            with pytest.raises(NodeFormatError):
                document_has_length(get, result.root, len(doc))  # an X node
        finally:
            use_id_key(None)
