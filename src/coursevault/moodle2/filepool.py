"""Moodle's file pool inside a backup: ``files/<first two hex digits>/<contenthash>``.

The name of a file member is the SHA-1 of its content (Moodle's
``contenthash``), and restore finds each file of ``files.xml`` by that name.
A member whose bytes hash to something else is therefore not the file its
name promises: a damaged copy, or a hand edit.  Ingest still stores it -- the
archive is what it is, and export gives back exactly what was read -- but
says so.  The hash is taken while the member is read for storing, so the
content is read once.
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

_POOL_NAME = re.compile(r"files/([0-9a-f]{2})/(\1[0-9a-f]{38})")


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def claimed_contenthash(path: str) -> str | None:
    """The SHA-1 a member's logical path claims for its content, or None when
    the path is not a file-pool name."""
    match = _POOL_NAME.fullmatch(path)
    return match.group(2) if match else None


class Sha1Reader:
    """Passes a stream's reads through, hashing them (SHA-1, as Moodle does)."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self._sha1 = hashlib.sha1(usedforsecurity=False)

    def read(self, n: int = -1, /) -> bytes:
        data = self._stream.read(n)
        self._sha1.update(data)
        return data

    def hexdigest(self) -> str:
        return self._sha1.hexdigest()
