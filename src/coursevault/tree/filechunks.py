"""Content-defined chunking of file contents (FastCDC).

A large file edited in place keeps most of its chunks, so a new version costs
roughly the edited region.  Files below the minimum chunk size are one blob.
Memory is one window whatever the file's size.

The window is 1 MiB (it was 8): a content-defined cut depends only on the
bytes since the chunk's start, and the last chunk of a window, which may be
cut by the window's end, is carried into the next, so the chunks are the
same whatever the window (tests/tree/test_filechunks.py).  A large window
only costs memory: each was read, then copied again behind the chunk carried
over, and glibc's allocator, its mmap threshold raised by each 8 MiB buffer
freed, served the next ones from a heap they left full of holes -- 16 MiB
held for a file and some 20 MB of a 1,000-user course's backup peak.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from coursevault.store.ids import ObjectId, ObjectType
from coursevault.tree.nodes import encode_chunked
from coursevault.tree.sink import ObjectSink

WINDOW = 1 << 20


class Readable(Protocol):
    def read(self, n: int = -1) -> bytes: ...


def iter_chunks(stream: Readable, min_size: int, avg_size: int, max_size: int) -> Iterator[bytes]:
    window = max(WINDOW, 4 * max_size)  # always room for a chunk after the one carried
    buf = b""
    eof = False
    while not eof or buf:
        while not eof and len(buf) < window:
            data = stream.read(window - len(buf))
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
