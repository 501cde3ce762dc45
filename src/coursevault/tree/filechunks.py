"""Content-defined chunking of file contents (FastCDC).

A large file edited in place keeps most of its chunks, so a new version costs
roughly the edited region.  Files below the minimum chunk size are one blob.
Memory is one window (8 MiB) whatever the file's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from coursevault.store.ids import ObjectId, ObjectType
from coursevault.tree.nodes import encode_chunked
from coursevault.tree.sink import ObjectSink

WINDOW = 8 << 20


class Readable(Protocol):
    def read(self, n: int = -1) -> bytes: ...


def iter_chunks(stream: Readable, min_size: int, avg_size: int, max_size: int) -> Iterator[bytes]:
    buf = b""
    eof = False
    while not eof or buf:
        while not eof and len(buf) < WINDOW:
            data = stream.read(WINDOW - len(buf))
            if not data:
                eof = True
                break
            buf += data
        if not buf:
            return
        if len(buf) <= min_size:
            yield buf
            return
        # imported here: fastcdc's package imports click (0.02 s of start-up),
        # and a night whose files are all known chunks none
        from fastcdc.fastcdc_cy import fastcdc_cy

        chunks: list[Any] = list(fastcdc_cy(memoryview(buf), min_size, avg_size, max_size))
        if not eof:
            chunks = chunks[:-1]  # the last cut may only be the window's end
        end = 0
        for c in chunks:
            yield buf[c.offset : c.offset + c.length]
            end = c.offset + c.length
        buf = buf[end:]


def store_content(
    sink: ObjectSink, stream: Readable, chunker: dict[str, int]
) -> tuple[ObjectId | None, int]:
    """Store a stream's bytes; return (content id, size).

    The content id is a blob for one chunk, a ``C`` tree for several, and None
    for empty content.
    """
    ids: list[ObjectId] = []
    sizes: list[int] = []
    for chunk in iter_chunks(stream, chunker["min"], chunker["avg"], chunker["max"]):
        ids.append(sink.put(ObjectType.BLOB, chunk))
        sizes.append(len(chunk))
    if not ids:
        return None, 0
    if len(ids) == 1:
        return ids[0], sizes[0]
    return sink.put_tree(ids, encode_chunked(sizes)), sum(sizes)
