"""The writer joins its parts in chunks as it goes (memory): the bytes must
be exactly those of one join at the end."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from coursevault.moodle2 import xmlwriter
from coursevault.moodle2.xmlwriter import XmlWriter


def _users(writer: XmlWriter, each: Callable[[], None] = lambda: None) -> None:
    """50 users written into ``writer``; ``each`` runs after each user."""
    writer.begin("users", {"id": "1"})
    for i in range(50):
        writer.begin("user", {"id": str(i)})
        row = {"username": f"u{i} & <é>", "email": None, "idnumber": ""}
        writer.values(row, row.get, None)
        writer.full("description", "x" * 40)
        writer.end("user")
        each()
    writer.end("users")


def _member() -> bytes:
    writer = XmlWriter()
    _users(writer)
    return writer.getvalue()


@pytest.mark.parametrize("per_chunk", [1, 2, 7, 4096])
def test_chunked_bytes_are_one_join(monkeypatch: pytest.MonkeyPatch, per_chunk: int) -> None:
    whole = _member()
    monkeypatch.setattr(xmlwriter, "PARTS_PER_CHUNK", per_chunk)
    writer_bytes = _member()
    assert writer_bytes == whole
    assert whole.count(b"<user id=") == 50 and "é".encode() in whole


def test_getvalue_twice_gives_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xmlwriter, "PARTS_PER_CHUNK", 3)
    writer = XmlWriter()
    writer.begin("a")
    writer.full("b", "c")
    writer.end("a")
    assert writer.getvalue() == writer.getvalue() == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<a>\n  <b>c</b>\n</a>')


@pytest.mark.parametrize("per_chunk", [1, 7, 4096])
def test_a_sink_is_handed_the_same_bytes_chunk_by_chunk(
    monkeypatch: pytest.MonkeyPatch, per_chunk: int
) -> None:
    """With a sink the writer keeps no chunk and joins nothing: each goes
    out as it is joined, and close() gives the member's length."""
    whole = _member()
    monkeypatch.setattr(xmlwriter, "PARTS_PER_CHUNK", per_chunk)
    chunks: list[bytes] = []
    writer = XmlWriter(sink=chunks.append)
    held: list[int] = []
    _users(writer, lambda: held.append(len(writer._chunks)))
    assert held == [0] * 50  # nothing held back
    assert len(chunks) > 1 or per_chunk == 4096
    assert writer.close() == len(whole)
    assert b"".join(chunks) == whole and all(chunks)
    with pytest.raises(ValueError, match="sink"):
        writer.getvalue()


def test_close_refuses_open_elements_and_a_writer_without_sink() -> None:
    writer = XmlWriter(sink=lambda _chunk: None)
    writer.begin("a")
    with pytest.raises(ValueError, match="left open: a"):
        writer.close()
    with pytest.raises(ValueError, match="no sink"):
        XmlWriter().close()
