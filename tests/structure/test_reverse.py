"""MemberReader reads a member as a stream: the same records, parents first
and complete, whatever the chunk boundaries; undeclared elements counted;
malformed XML a one-line ``BadInputError`` -- and it never builds the
document's tree (a big member's memory is its chunk, not its size)."""

from __future__ import annotations

import tracemalloc

import pytest

from coursevault.errors import BadInputError
from coursevault.structure.elements import Nested
from coursevault.structure.reverse import MemberReader

XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<forum id="5"><name>F &amp; co</name><intro>$@NULL@$</intro><extra><deep>x</deep></extra>
  <discussions>
    <discussion id="10"><name>D</name>
      <posts>
        <post id="100"><subject>r\xc3\xa9ponse</subject><message><![CDATA[<p>m</p>]]></message></post>
        <post id="101"><subject></subject><message>m<b>bold</b></message></post>
      </posts>
    </discussion>
    <discussion id="11"><name>E</name><posts></posts></discussion>
  </discussions>
  <late>after</late>
</forum>"""


def _tree() -> Nested:
    post = Nested("post", attrs=("id",), fields=("subject", "message"))
    discussion = Nested("discussion", attrs=("id",), fields=("name",),
                        children=[Nested("posts", children=[post])])
    return Nested("forum", attrs=("id",), fields=("name", "intro", "late"),
                  children=[Nested("discussions", children=[discussion])])


@pytest.mark.parametrize("chunk", [1, 7, 64 * 1024])
def test_records_in_document_order_whatever_the_chunks(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MemberReader, "CHUNK", chunk)
    reader = MemberReader("forum.xml", XML)
    got = [(r.name, r.values, r.parent.name if r.parent else None)
           for r in reader.records(_tree())]
    assert got == [
        ("forum", {"id": "5", "name": "F & co", "intro": None, "late": "after"}, None),
        ("discussions", {}, "forum"),
        ("discussion", {"id": "10", "name": "D"}, "discussions"),
        ("posts", {}, "discussion"),
        ("post", {"id": "100", "subject": "réponse", "message": "<p>m</p>"}, "posts"),
        # a final's own text, its child elements not (as ElementTree's .text)
        ("post", {"id": "101", "subject": "", "message": "m"}, "posts"),
        ("discussion", {"id": "11", "name": "E"}, "discussions"),
        ("posts", {}, "discussion"),
    ]
    # an element the definition lacks (its subtree too), and a final after the
    # nested elements (Moodle's writer never writes one: read, and said)
    assert reader.unknown == {"forum/extra": 1, "forum/late (after nested elements)": 1}


def test_malformed_and_unexpected_documents_are_bad_input() -> None:
    with pytest.raises(BadInputError, match=r"^forum\.xml: not well-formed XML"):
        list(MemberReader("forum.xml", XML[:-20]).records(_tree()))
    with pytest.raises(BadInputError, match="expected <forum>, found <choice>"):
        list(MemberReader("forum.xml", b"<choice/>").records(_tree()))


def test_a_big_member_is_read_in_little_memory() -> None:
    posts = b"".join(b'<post id="%d"><subject>s%d</subject><message>%s</message></post>'
                     % (i, i, b"m" * 200) for i in range(20000))
    data = (b'<forum id="1"><name>F</name><discussions><discussion id="1"><name>D</name>'
            b"<posts>" + posts + b"</posts></discussion></discussions></forum>")
    reader = MemberReader("forum.xml", data)
    tracemalloc.start()
    try:
        count = sum(1 for _ in reader.records(_tree()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 20004
    assert len(data) > 4_000_000 and peak < 1_000_000  # a parsed tree took ~40 MB
