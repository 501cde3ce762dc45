"""The XML chunker cuts records as exact byte slices: render(chunk(doc)) == doc.

Fed in pieces of any size -- a tag, a comment or an attribute value may
straddle two feeds -- and whatever the formatting, since export rests on it.
"""

from __future__ import annotations

import itertools

import pytest
from helpers import MemSink
from hypothesis import example, given, settings
from hypothesis import strategies as st

from coursevault.store.ids import ObjectType, object_id
from coursevault.store.treecodec import encode_tree
from coursevault.tree import xmltree
from coursevault.tree.graft import Graft
from coursevault.tree.listbuilder import RecordListBuilder
from coursevault.tree.render import render_document
from coursevault.tree.xmltree import (
    NotCanonical,
    XmlChunker,
    XmlSyntax,
)

NAMES = st.sampled_from(["a", "b", "post", "x_y", "c1"])
TEXT = st.sampled_from(["", "t", " ", "\n  ", "&amp;", "&#65;", "a > b", "é", "\n"])
ATTR = st.sampled_from(["", ' id="1"', " id='2'", ' x="a>b"', " y='\"'", ' id="3"\tz="4"'])
MISC = st.sampled_from(["", "<!-- c > d <e> -->", "<![CDATA[x < y]]>", "<?pi a?>"])


@st.composite
def element(draw: st.DrawFn, depth: int = 0) -> str:
    name, attr = draw(NAMES), draw(ATTR)
    if depth > 3 or draw(st.integers(0, 3)) == 0:
        return f"<{name}{attr}/>" if draw(st.booleans()) else f"<{name}{attr}>{draw(TEXT)}</{name}>"
    kids = draw(st.lists(st.one_of(element(depth + 1), TEXT, MISC), max_size=8))
    return f"<{name}{attr}>{''.join(kids)}</{name}>"


@st.composite
def document(draw: st.DrawFn) -> bytes:
    prologue = draw(
        st.sampled_from(['<?xml version="1.0" encoding="UTF-8"?>\n', "", "<!-- hi -->"])
    )
    trailer = draw(st.sampled_from(["", "\n", "\n<!-- end -->\n"]))
    return (prologue + draw(element()) + trailer).encode()


def chunk(data: bytes, step: int) -> tuple[MemSink, bytes]:
    sink = MemSink()
    chunker = XmlChunker(sink)
    for i in range(0, len(data), step):
        chunker.feed(data[i : i + step])
    doc = chunker.close().store(sink)
    out = bytearray()
    render_document(sink.get, doc, out.extend)
    return sink, bytes(out)


@settings(max_examples=300, deadline=None)
@given(doc=document(), step=st.integers(1, 64))
def test_render_gives_back_the_input(doc: bytes, step: int) -> None:
    assert chunk(doc, step)[1] == doc
    assert chunk(doc, 1 << 20)[1] == doc


@pytest.mark.parametrize("size", [0, 1, 126, 127, 128, 16_383, 16_384, 70_000, 300_000])
def test_records_of_every_length_class_render_back(size: int) -> None:
    """Group bodies hold one-, two- and three-byte length varints; render reads
    the short ones inline, so each class must come back exact (a record over a
    group's 256 KiB cap is a group of its own)."""
    posts = "".join(
        f'\n  <post id="{i}"><m>{"x" * (size if i % 2 else i)}</m><n>{i}</n></post>'
        for i in range(6)
    )
    doc = f"<f>{posts}\n</f>\n".encode()
    assert chunk(doc, 1 << 20)[1] == doc


def test_record_ids_handed_to_groups_are_the_ids_of_their_x_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The chunker hashes field-only records without building their tree
    envelope; the id it hands on must still be the X node's (groups are cut
    by it, and diff names records by it)."""
    seen = []
    real = RecordListBuilder.append

    def checking(self, rid, refs, body):  # type: ignore[no-untyped-def]
        seen.append(rid == object_id(ObjectType.TREE, encode_tree(refs, body)))
        return real(self, rid, refs, body)

    monkeypatch.setattr(RecordListBuilder, "append", checking)
    posts = "".join(
        f'<post id="{i}"><m>{i}</m>'
        + ("<r><a>1</a></r><r><a>2</a></r>" if i % 3 else "")
        + "</post>"
        for i in range(30)
    )
    doc = f"<f><posts>{posts}</posts></f>".encode()
    assert chunk(doc, 7)[1] == doc
    assert len(seen) > 30 and all(seen)


def test_sibling_records_share_a_run_and_unchanged_records_their_ids() -> None:
    posts = "".join(f'\n    <post id="{i}">\n      <m>{i}</m>\n    </post>' for i in range(200))
    doc = f"<f>\n  <posts>{posts}\n  </posts>\n</f>\n".encode()
    sink1, out = chunk(doc, 4096)
    assert out == doc
    edited = doc.replace(b"<m>150</m>", b"<m>edited</m>")
    sink2, out2 = chunk(edited, 4096)
    assert out2 == edited
    # the group holding the post (two if its new id moved a boundary), the chunks
    # above it, the posts record's group, the root, the document
    assert len(set(sink2.objects) - set(sink1.objects)) <= 8


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ("<a>\n  <b><c>1</c></b>\n</a>".encode("utf-16"), "ASCII-compatible"),
        (b'<a xmlns:q="u">\n  <q:b><c>1</c></q:b>\n</a>', "namespace prefix"),
        (b"<a>\n  <b><c>&lt;_cvlist/&gt; _cvlist</c></b>\n</a>", "run marker"),
        (b'<a xmlns:q="u">\n  <b q:x="1"><c>1</c></b>\n</a>', "namespace prefixes"),
        (b"<!-- " + b"x" * (1 << 21) + b" -->\n<a><b>1</b></a>", "before the root"),
    ],
)
def test_documents_that_cannot_be_cut_exactly_say_why(doc: bytes, reason: str) -> None:
    chunker = XmlChunker(MemSink())
    for i in range(0, len(doc), 1 << 20):
        chunker.feed(doc[i : i + (1 << 20)])
    with pytest.raises(NotCanonical, match=reason):
        chunker.close()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"<a><b></a>", "malformed XML at line 1: Opening and ending tag mismatch: b"),
        (b"<a>\n<b>&xxe;</b></a>", "malformed XML at line 2: Entity 'xxe' not defined"),
        (b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "DTD"),
        (b"<a></a><b></b>", "malformed XML at line 1: Extra content at the end of the document"),
        (b"<a>", "malformed XML at line 1: Premature end of data in tag a"),
    ],
)
def test_malformed_xml_is_refused_with_its_line(doc: bytes, message: str) -> None:
    chunker = XmlChunker(MemSink())
    with pytest.raises(XmlSyntax, match=message):
        chunker.feed(doc)
        chunker.close()


def test_malformed_xml_is_refused_even_after_the_scanner_gave_up() -> None:
    chunker = XmlChunker(MemSink())
    chunker.feed("<a>\n  <b><c>1</c></b>\n".encode("utf-16"))
    with pytest.raises(XmlSyntax):
        chunker.feed("<d></e></a>".encode("utf-16-le"))
        chunker.close()


def test_markup_the_scanner_cannot_follow_is_kept_raw_not_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """expat is the judge of well-formedness: if the scanner ever fails to follow
    a valid document, the document is stored raw, never refused."""
    import re

    from coursevault.tree import xmltags

    monkeypatch.setattr(xmltags, "START_TAG_END", re.compile(rb"(?!)"))
    chunker = XmlChunker(MemSink())
    chunker.feed(b'<a>\n  <b x="1>2"><c>1</c></b>\n</a>\n')
    with pytest.raises(NotCanonical, match="could not follow"):
        chunker.close()


def test_scanner_that_cannot_follow_gives_up_without_buffering_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import re

    from coursevault.tree import xmltags

    monkeypatch.setattr(xmltags, "START_TAG_END", re.compile(rb"(?!)"))
    chunker = XmlChunker(MemSink())
    chunker.feed(b'<a>\n  <b x="1>2"><c>1</c></b>\n')
    for _ in range(3):
        chunker.feed(b"  <d>" + b"x" * 600_000 + b"</d>\n")
    assert len(chunker._buf) == 0  # gave up: nothing more is kept
    chunker.feed(b"</a>\n")
    with pytest.raises(NotCanonical, match="could not follow"):
        chunker.close()


def test_runs_written_one_object_per_record_still_render_and_diff_equal() -> None:
    """Before records were grouped, each was an X object and a run listed their
    ids; such repositories must still read, and compare equal to the new layout."""
    from coursevault.diff.treediff import _list_difference
    from coursevault.store.treecodec import decode_tree
    from coursevault.tree.listbuilder import ListBuilder
    from coursevault.tree.nodes import encode_document, encode_element, iter_records

    posts = [f'<post id="{i}">\n      <m>{i}</m>\n    </post>'.encode() for i in range(40)]
    doc = b"<f>\n  <posts>\n    " + b"\n    ".join(posts) + b"\n  </posts>\n</f>\n"
    sink = MemSink()
    chunker = XmlChunker(sink)
    chunker.feed(doc)
    new_doc = chunker.close().store(sink)
    # the same document, written the old way
    old = ListBuilder(sink)
    for p in posts:
        old.append(sink.put_tree([], encode_element([], p)))
    inner = sink.put_tree(
        [old.finish()], encode_element([b"\n    "], b"<posts>\n    <_cvlist/>\n  </posts>")
    )
    root = sink.put_tree([inner], encode_element([b"\n  "], b"<f>\n  <_cvlist/>\n</f>"))
    old_doc = sink.put_tree([root], encode_document(b"", b"\n"))
    rendered = bytearray()
    render_document(sink.get, old_doc, rendered.extend)
    assert bytes(rendered) == doc

    def posts_run(d: bytes) -> bytes:
        f_root = decode_tree(sink.get(d)[1])[0][0]
        f_run = decode_tree(sink.get(f_root)[1])[0][0]
        posts_rec = next(iter_records(sink.get, f_run))
        return posts_rec.refs[0]

    old_run, new_run = posts_run(old_doc), posts_run(new_doc)
    assert old_run != new_run
    assert [r.id for r in iter_records(sink.get, old_run)] == [
        r.id for r in iter_records(sink.get, new_run)
    ]
    assert _list_difference(sink.get, old_run, new_run, {}) == ([], [])


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 400), pos=st.integers(0), seed=st.integers(0, 2**32))
@example(n=81, pos=18, seed=1369893)  # a chunk split in three above the new group
def test_inserting_a_record_rewrites_few_groups(n: int, pos: int, seed: int) -> None:
    import random

    from coursevault.store.ids import ObjectType, object_id
    from coursevault.store.treecodec import decode_tree, encode_tree
    from coursevault.tree.listbuilder import RecordListBuilder
    from coursevault.tree.nodes import encode_element, iter_records

    rnd = random.Random(seed)

    def record() -> tuple[bytes, bytes]:
        body = encode_element(
            [], b"<r>" + rnd.randbytes(rnd.randint(125, 3000)).hex().encode() + b"</r>"
        )
        return object_id(ObjectType.TREE, encode_tree([], body)), body

    recs = [record() for _ in range(n)]
    sink = MemSink()

    def build(items: list[tuple[bytes, bytes]]) -> bytes:
        b = RecordListBuilder(sink)
        for rid, body in items:
            b.append(rid, [], body)
        return b.finish()

    root = build(recs)
    assert [r.body for r in iter_records(sink.get, root)] == [body for _r, body in recs]
    before = set(sink.objects)
    recs.insert(pos % (n + 1), record())
    root2 = build(recs)
    assert [r.body for r in iter_records(sink.get, root2)] == [body for _r, body in recs]
    # Groups: the one the record lands in changes, two where the new record ends
    # a group (records of 250+ bytes end one with probability >= 1/8, so the
    # 64-record cap never shifts).  Each list level above: the chunk holding the
    # changed group(s), split in up to three where new ids are boundaries.
    new = set(sink.objects) - before
    kinds = [decode_tree(sink.objects[o][1])[1][:1] for o in new]
    levels = 0
    node = root2
    while decode_tree(sink.objects[node][1])[1][:1] == b"L":
        levels += 1
        node = decode_tree(sink.objects[node][1])[0][0]
    assert kinds.count(b"R") <= 2
    assert kinds.count(b"L") <= 3 * levels


# -- resuming from a checkpoint --------------------------------------------------


def cut(
    sink: MemSink, data: bytes, step: int, every: int = 0
) -> tuple[bytes, list[tuple[int, dict]]]:
    """(the document's D node id, the checkpoints taken)."""
    chunker = XmlChunker(sink, checkpoint_every=every)
    for i in range(0, len(data), step):
        chunker.feed(data[i : i + step])
    return chunker.close().store(sink), chunker.checkpoints


def resumed(sink: MemSink, data: bytes, offset: int, state: dict, step: int) -> bytes:
    chunker = XmlChunker.resume(sink, offset, state, lines=data[:offset].count(b"\n"))
    for i in range(offset, len(data), step):
        chunker.feed(data[i : i + step])
    return chunker.close().store(sink)


@settings(max_examples=300, deadline=None)
@given(
    doc=document(),
    tail=element(),
    every=st.integers(1, 200),
    step=st.integers(1, 64),
    pick=st.integers(0),
)
def test_a_resumed_cut_is_the_cut_of_the_whole(
    doc: bytes, tail: str, every: int, step: int, pick: int
) -> None:
    """From any checkpoint, going on with the same or with other bytes gives
    what cutting the whole document gives: the state is all there is."""
    sink = MemSink()
    whole, points = cut(sink, doc, step, every)
    for offset, state in points:
        assert resumed(sink, doc, offset, state, step) == whole
    if not points:
        return
    offset, state = points[pick % len(points)]
    # another night: the same first bytes, then something else (a new record
    # just after the checkpoint, inside the element that was open there)
    other = doc[:offset] + tail.encode() + doc[offset:]
    expected, _ = cut(MemSink(), other, step)
    assert resumed(sink, other, offset, state, step) == expected
    out = bytearray()
    render_document(sink.get, expected, out.extend)
    assert bytes(out) == other


def test_checkpoints_come_every_so_many_bytes_at_end_tags() -> None:
    posts = "".join(f"<post id='{i}'><subject>s{i}</subject></post>\n" for i in range(200))
    doc = f'<?xml version="1.0"?>\n<forum>\n<posts>\n{posts}</posts>\n</forum>\n'.encode()
    sink = MemSink()
    _whole, points = cut(sink, doc, 4096, every=1000)
    offsets = [o for o, _s in points]
    assert len(offsets) == len(doc) // 1000 or len(offsets) == len(doc) // 1000 - 1
    assert all(doc[o - 1 : o] == b">" and doc[:o].rstrip().endswith(b"</post>") for o in offsets)
    assert all(b - a >= 1000 for a, b in itertools.pairwise(offsets))


def test_a_resumed_cut_reports_malformed_xml_at_its_real_line() -> None:
    posts = "".join(f"<post id='{i}'><subject>s{i}</subject></post>\n" for i in range(50))
    doc = f'<?xml version="1.0"?>\n<forum>\n<posts>\n{posts}</posts>\n</forum>\n'.encode()
    sink = MemSink()
    _whole, points = cut(sink, doc, 4096, every=500)
    offset, state = points[1]
    bad = doc[:offset] + b"\n<post><oops></post>\n" + doc[offset:]
    line = bad[: bad.index(b"</post>", offset)].count(b"\n") + 1
    with pytest.raises(XmlSyntax, match=f"line {line}"):
        resumed(sink, bad, offset, state, 4096)


# -- grafting: jumping over an element that opened elsewhere ------------------------


class BytesGrafts:
    """A graft source over two nights' bytes, compared directly (the ingest's
    own, tree/graft.py, compares hashes of them)."""

    def __init__(self, old: bytes, points: list[tuple[int, dict]], new: bytes) -> None:
        self.old, self.new = old, new
        self.inside: dict[bytes, list[tuple[int, int, int, dict]]] = {}
        for offset, state in points:
            for depth, item in enumerate(state["stack"]):
                if depth and item["pieces"] is not None:
                    tag = old[item["start"] : item["head"]]
                    self.inside.setdefault(tag, []).append((item["start"], offset, depth, state))
        self.tags = set(self.inside)
        self.asked = 0

    def find(self, tag: bytes, start: int, fed: int) -> Graft | None:
        self.asked += 1
        best = None
        for old, offset, depth, state in self.inside.get(tag, []):
            n = offset - old
            same = self.old[old:offset] == self.new[start : start + n]
            if same and (best is None or n > best[1] - best[0]):
                best = (old, offset, depth, state)
        if best is None:
            return None
        old, offset, depth, state = best
        lines = self.new[: offset - old + start].count(b"\n")
        return Graft(offset, old, state, depth, lines)


def fed(chunker: XmlChunker, data: bytes, step: int) -> XmlChunker:
    """Feed ``data`` as ingest does: on from where the chunker asks next."""
    pos = 0
    while pos < len(data):
        chunker.feed(data[pos : pos + step])
        pos = max(chunker.next_offset, pos + step)
    return chunker


def change(doc: bytes, points: list[tuple[int, dict]], pick: int, before: str, after: str):
    """``doc`` with ``before`` just before an element open at a checkpoint
    (so no checkpoint before it can be resumed from) and ``after`` just
    after that checkpoint; and how far a graft from there would jump.  None
    when no checkpoint is inside an element with a child."""
    frames = [
        (offset, item)
        for offset, state in points
        for depth, item in enumerate(state["stack"])
        if depth and item["pieces"] is not None
    ]
    if not frames:
        return None
    offset, item = frames[pick % len(frames)]
    start = item["start"]
    other = doc[:start] + before.encode() + doc[start:offset] + after.encode() + doc[offset:]
    return other, offset - start


@settings(max_examples=300, deadline=None)
@given(
    doc=document(),
    before=element(),
    after=element(),
    every=st.integers(1, 200),
    step=st.integers(1, 64),
    picks=st.tuples(st.integers(0), st.integers(0)),
)
def test_a_grafted_cut_is_the_cut_of_the_whole(
    doc: bytes, before: str, after: str, every: int, step: int, picks: tuple[int, int]
) -> None:
    """Two more nights, each with new elements before and after one of the
    night before's checkpoints, are cut with grafts from the night before's
    checkpoints (the second night's from those the first grafted cut took):
    the same trees and counts as cutting them whole."""
    sink = MemSink()
    _whole, points = cut(sink, doc, step, every)
    for pick in picks:
        changed = change(doc, points, pick, before, after)
        if changed is None:
            return
        other, jump = changed
        whole = XmlChunker(MemSink())
        fed(whole, other, step)
        expected = whole.close()
        grafts = BytesGrafts(doc, points, other)
        chunker = fed(XmlChunker(sink, checkpoint_every=every, grafts=grafts), other, step)
        got = chunker.close()
        tree = expected.store(sink)
        assert got.store(sink) == tree
        assert (got.records, got.elements) == (expected.records, expected.elements)
        assert chunker.grafted >= jump  # it jumped, at least as far as that
        out = bytearray()
        render_document(sink.get, tree, out.extend)
        assert bytes(out) == other
        doc, points = other, chunker.checkpoints


def test_a_graft_goes_on_checking_at_the_real_line() -> None:
    """Past a jump libxml2 starts again from the open elements, told how many
    lines it skipped: malformed XML after it is refused at its line."""
    posts = "".join(f"<post id='{i}'><subject>s{i}</subject></post>\n" for i in range(60))
    doc = f'<?xml version="1.0"?>\n<forum>\n<posts>\n{posts}</posts>\n</forum>\n'.encode()
    sink = MemSink()
    _whole, points = cut(sink, doc, 4096, every=500)
    offset = points[-2][0]
    other = doc.replace(b"<forum>", b"<forum>\n<!--\nnew\n-->\n<grade>1</grade>", 1)
    shift = len(other) - len(doc)
    bad = other[: offset + shift] + b"\n<post><oops></post>\n" + other[offset + shift :]
    line = bad[: bad.index(b"</post>", offset + shift)].count(b"\n") + 1
    grafts = BytesGrafts(doc, points, bad)
    chunker = XmlChunker(sink, grafts=grafts)
    with pytest.raises(XmlSyntax, match=f"line {line}"):
        fed(chunker, bad, 256)
        chunker.close()
    assert chunker.grafted > 0


def test_no_checkpoint_holds_more_than_its_bound_of_one_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside one record of many fields every checkpoint kept all of it so
    far: 4 MB of fields stored 20 MB of states, 50 MB overflowed the catalog
    after commit.  Past the bound none is taken; after the record, again."""
    monkeypatch.setattr(xmltree, "MAX_CHECKPOINT_BUFFER", 5_000, raising=False)
    fields = "".join(f"<p{i}>q</p{i}>" for i in range(3_000))
    after = "".join(f"<post id='{i}'><s>s{i}</s></post>\n" for i in range(300))
    doc = (f'<?xml version="1.0"?>\n<forum>\n<big>{fields}</big>\n<posts>\n{after}'
           "</posts>\n</forum>\n").encode()
    sink = MemSink()
    whole, points = cut(sink, doc, 4096, every=1000)
    assert all(len(state["buf"]) // 2 <= 5_000 for _o, state in points)
    end_of_big = doc.index(b"</big>")
    assert any(o > end_of_big for o, _s in points)
    for offset, state in points:  # the ones taken still resume
        assert resumed(sink, doc, offset, state, 4096) == whole
