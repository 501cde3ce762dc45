"""A local, disposable cache of walk dictionaries' contents (docs/format.md,
"Dictionaries").

A dictionary's content is a function of its object and the objects it reads,
so it can be kept on disk by id.  A walk reads 4 MiB of a snapshot's trees
from hundreds of blocks, and every night of a course rebuilt it at the root
of its chain of list dictionaries: 0.4 s a night on the 50 MB course
(cProfile: block reads and hashing).  A list is quick to rebuild (its
members are the previous night's new trees, a few blocks) and is not kept.

Files are written whole (temporary file, then rename) and carry the BLAKE3 of
their content; one that does not match is ignored and rewritten.  Only the
newest KEEP are kept (a walk serves a course's first nights only).  Nothing
here is needed to read a repository: delete the folder at will.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import blake3

from coursevault.store.ids import ObjectId

MAGIC = b"CVDC\x01"
_HEAD = struct.Struct(">5sI32s")  # magic, depth, blake3 of the content
KEEP = 16


class DictionaryCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, dict_id: ObjectId) -> tuple[int, bytes] | None:
        """(depth, content) if a sound file for ``dict_id`` is here."""
        try:
            data = (self.folder / dict_id.hex()).read_bytes()
        except OSError:
            return None
        if len(data) < _HEAD.size:
            return None
        magic, depth, digest = _HEAD.unpack_from(data)
        content = data[_HEAD.size :]
        if magic != MAGIC or blake3.blake3(content).digest() != digest:
            return None
        return depth, content

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
            self._trim()
        except OSError:
            pass

    def _trim(self) -> None:
        files = [p for p in self.folder.iterdir() if not p.name.startswith(".")]
        if len(files) <= KEEP:
            return
        files.sort(key=lambda p: p.stat().st_mtime)
        for old in files[:-KEEP]:
            old.unlink(missing_ok=True)
