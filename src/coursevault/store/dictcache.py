"""A local, disposable cache of walk dictionaries' contents (docs/format.md,
"Dictionaries").

A dictionary's content is a function of its object and the objects it reads,
so it can be kept on disk by id.  A walk reads 4 MiB of a snapshot's trees
from hundreds of blocks, and every night of a course rebuilt it at the root
of its chain of list dictionaries: 0.4 s a night on the 50 MB course
(cProfile: block reads and hashing).  A list is quick to rebuild (its
members are the previous night's new trees, a few blocks) and is not kept.

Files are written whole (temporary file, then rename) and carry the BLAKE3 of
their content; one that does not match is ignored and rewritten.  What was
used least recently goes first, once the folder holds more than KEEP_BYTES:
a walk stays the root of its course's chain of list dictionaries, read every
night until the chain is ``dictionary_depth`` long, so a site's nightly run
reads one per course, in course order.  (Keeping a fixed 16, newest written
first, made every course of a site of more than 16 walk again every night:
a cycle longer than the cache misses every time.)  Nothing here is needed
to read a repository: delete the folder at will.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from pathlib import Path

import blake3

from coursevault.store.ids import ObjectId

MAGIC = b"CVDC\x01"
_HEAD = struct.Struct(">5sI32s")  # magic, depth, blake3 of the content
KEEP_BYTES = 512 * 2**20  # some 4,000 walks of a small course, 128 of the largest (4 MiB)


class DictionaryCache:
    def __init__(self, folder: Path, keep_bytes: int = KEEP_BYTES) -> None:
        self.folder = folder
        self.keep_bytes = keep_bytes

    def get(self, dict_id: ObjectId) -> tuple[int, bytes] | None:
        """(depth, content) if a sound file for ``dict_id`` is here (marked
        used now, so that trimming drops it last)."""
        path = os.path.join(self.folder, dict_id.hex())  # not a Path: most ids are not here
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        if len(data) < _HEAD.size:
            return None
        magic, depth, digest = _HEAD.unpack_from(data)
        content = data[_HEAD.size :]
        if magic != MAGIC or blake3.blake3(content).digest() != digest:
            return None
        with contextlib.suppress(OSError):  # a read-only cache still serves, trims less well
            os.utime(path)
        return depth, content

    def drop(self, dict_id: ObjectId) -> None:
        """Forget a content found not to read what it should."""
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.folder, dict_id.hex()))

    def put(self, dict_id: ObjectId, depth: int, content: bytes) -> None:
        """Keep a content; a cache that cannot be written is only slower."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(_HEAD.pack(MAGIC, depth, blake3.blake3(content).digest()))
                    f.write(content)
                os.replace(tmp, self.folder / dict_id.hex())
            except BaseException:
                os.unlink(tmp)
                raise
            self._trim(dict_id.hex())
        except OSError:
            pass

    def _trim(self, kept: str) -> None:
        """Drop the least recently used files until the rest fit in keep_bytes
        (the one just written stays, however large)."""
        files = []
        for p in self.folder.iterdir():
            if not p.name.startswith("."):
                try:
                    st = p.stat()
                except FileNotFoundError:  # another process trimmed it
                    continue
                files.append((st.st_mtime, p.name, st.st_size, p))
        total = sum(f[2] for f in files)
        for _mtime, name, size, path in sorted(files):
            if total <= self.keep_bytes:
                return
            if name != kept:
                path.unlink(missing_ok=True)
                total -= size
