"""``values`` and ``record``, the engine's fast paths, write exactly what
``begin``/``full``/``end`` write one element at a time."""

from __future__ import annotations

from coursevault.moodle2.xmlwriter import XmlWriter

SKIP = object()
ROW = {
    "id": 12,  # not a string: written as its str
    "name": "Tom & <Jerry>\r\n",  # escaped, newline normalised
    "intro": "see https://example.org/mod/page/view.php?id=3 now",  # >= 32: transformed
    "short": "https://x",  # < 32: not transformed
    "gone": SKIP,  # no element at all
    "empty": "",
    "null": None,
}


def _upper(text: str) -> str:
    return text.upper()


def _one_by_one(tag: str) -> bytes:
    writer = XmlWriter(_upper)
    writer.begin("outer")
    writer.begin(tag)
    for name, value in ROW.items():
        if value is not SKIP:
            writer.full(name, None if value is None else str(value))
    writer.end(tag)
    writer.end("outer")
    return writer.getvalue()


def test_values_writes_what_full_writes() -> None:
    writer = XmlWriter(_upper)
    writer.begin("outer")
    writer.begin("row")
    writer.values(ROW, ROW.get, SKIP)
    writer.end("row")
    writer.end("outer")
    assert writer.getvalue() == _one_by_one("row")


def test_record_is_begin_values_end() -> None:
    writer = XmlWriter(_upper)
    writer.begin("outer")
    writer.record("row", ROW, ROW.get, SKIP)
    writer.end("outer")
    data = writer.getvalue()
    assert data == _one_by_one("row")
    assert b"<id>12</id>" in data and b"<gone>" not in data and b"$@NULL@$" in data
    assert b"Tom &amp; &lt;Jerry&gt;\n" in data and b"SEE HTTPS://" in data
    assert b"<short>https://x</short>" in data


def test_record_at_the_top_and_empty() -> None:
    writer = XmlWriter()
    writer.record("top", (), {}.get, SKIP)
    one = XmlWriter()
    one.begin("top")
    one.end("top")
    assert writer.getvalue() == one.getvalue()
