"""The XML chunker cuts records as exact byte slices: render(chunk(doc)) == doc.

Fed in pieces of any size -- a tag, a comment or an attribute value may
straddle two feeds -- and whatever the formatting, since export rests on it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_incremental import MemSink

from coursevault.snapshot.xmltree import NotCanonical, XmlChunker, XmlSyntax, render_document

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


def test_sibling_records_share_a_run_and_unchanged_records_their_ids() -> None:
    posts = "".join(f'\n    <post id="{i}">\n      <m>{i}</m>\n    </post>' for i in range(200))
    doc = f"<f>\n  <posts>{posts}\n  </posts>\n</f>\n".encode()
    sink1, out = chunk(doc, 4096)
    assert out == doc
    edited = doc.replace(b"<m>150</m>", b"<m>edited</m>")
    sink2, out2 = chunk(edited, 4096)
    assert out2 == edited
    assert len(set(sink2.objects) - set(sink1.objects)) <= 6  # record, list chunks, path


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
        (b"<a><b></a>", "malformed XML at line 1: mismatched tag"),
        (b"<a>\n<b>&xxe;</b></a>", "malformed XML at line 2: undefined entity"),
        (b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "DTD"),
        (b"<a></a><b></b>", "malformed XML at line 1: junk after document element"),
        (b"<a>", "malformed XML at line 1: no element found"),
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

    from coursevault.snapshot import xmltree

    monkeypatch.setattr(xmltree, "_START_TAG_END", re.compile(rb"(?!)"))
    chunker = XmlChunker(MemSink())
    chunker.feed(b'<a>\n  <b x="1>2"><c>1</c></b>\n</a>\n')
    with pytest.raises(NotCanonical, match="could not follow"):
        chunker.close()


def test_scanner_that_cannot_follow_gives_up_without_buffering_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import re

    from coursevault.snapshot import xmltree

    monkeypatch.setattr(xmltree, "_START_TAG_END", re.compile(rb"(?!)"))
    chunker = XmlChunker(MemSink())
    chunker.feed(b'<a>\n  <b x="1>2"><c>1</c></b>\n')
    for _ in range(3):
        chunker.feed(b"  <d>" + b"x" * 600_000 + b"</d>\n")
    assert len(chunker._buf) == 0  # gave up: nothing more is kept
    chunker.feed(b"</a>\n")
    with pytest.raises(NotCanonical, match="could not follow"):
        chunker.close()
