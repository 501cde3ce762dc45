"""Bytes appended in order, in memory while small, then in a temporary file.

Why: a write session's open pack grows to the repository's pack size (16
MiB by default) before it is written; held in memory, it was the largest
single thing a full backup of a big course kept (docs/benchmarks.md, 9b),
and a night's packs, a few kB, never come near it.  A spool keeps the small
ones in memory (no file is made for them) and moves a pack that passes
``spill_at`` bytes to an unnamed temporary file (``tempfile``: ``TMPDIR``),
which a folder repository copies into place without reading it back into
Python (:func:`write_spool`).  Nothing in a spool is durable: it is scratch
that the backend's own atomic write makes durable.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import struct
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol, Self, runtime_checkable

import blake3

from coursevault.errors import ScratchError
from coursevault.store.backend import Backend

CHUNK = 1 << 20  # what is read at a time from a spilled spool
# An open pack past this many bytes of finished blocks goes on in a temporary
# file: a full backup holds 1 MiB of it, not the pack size (16 MiB).  Writers
# spill at half their pack size when that is less, so a repository of small
# packs (the crash suite's) takes the same path as one of 16 MiB packs.
PACK_SPILL = 1 << 20


def pack_spill(pack_size: int) -> int:
    """Where a writer of ``pack_size`` packs spills its open pack (above)."""
    return min(PACK_SPILL, pack_size // 2)


class Spool:
    """An append-only byte buffer that moves to a temporary file once it
    passes ``spill_at`` bytes (``None``: never)."""

    def __init__(self, first: bytes = b"", spill_at: int | None = None) -> None:
        self._mem: bytearray | None = bytearray(first)
        self._file: BinaryIO | None = None
        self._size = len(first)
        self._spill_at = spill_at

    @property
    def size(self) -> int:
        return self._size

    @property
    def spilled(self) -> bool:
        return self._file is not None

    def append(self, data: bytes | bytearray | memoryview) -> None:
        if self._mem is not None:
            self._mem += data
            self._size = len(self._mem)
            if self._spill_at is not None and self._size > self._spill_at:
                self._spill()
            return
        assert self._file is not None
        _write_all(self._file.fileno(), data, self._size)
        self._size += len(data)

    def _spill(self) -> None:
        assert self._mem is not None
        try:
            self._file = tempfile.TemporaryFile(prefix="coursevault-pack-")  # noqa: SIM115
        except OSError as exc:
            raise scratch_error("make", exc) from exc
        _write_all(self._file.fileno(), self._mem, 0)
        self._mem = None

    def patch(self, offset: int, data: bytes) -> None:
        """Overwrite bytes already appended (a pack's version byte)."""
        if offset + len(data) > self._size:
            raise ValueError("patch past the end of the spool")
        if self._mem is not None:
            self._mem[offset : offset + len(data)] = data
        else:
            assert self._file is not None
            _write_all(self._file.fileno(), data, offset)

    def pread(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (all of them: the spool holds them)."""
        if self._mem is not None:
            return bytes(self._mem[offset : offset + length])
        assert self._file is not None
        parts: list[bytes] = []
        fd, end = self._file.fileno(), offset + length
        while offset < end:
            got = os.pread(fd, min(CHUNK, end - offset), offset)
            if not got:
                raise OSError(f"temporary pack file ends at {offset}, before {end}")
            parts.append(got)
            offset += len(got)
        return b"".join(parts)

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The whole content, a piece at a time."""
        if self._mem is not None:
            yield memoryview(self._mem)
            return
        for at in range(0, self._size, CHUNK):
            yield self.pread(at, min(CHUNK, self._size - at))

    def digest(self) -> bytes:
        """blake3 of the content (a pack's id)."""
        hasher = blake3.blake3()
        for piece in self.chunks():
            hasher.update(piece)
        return hasher.digest()

    def view(self) -> memoryview:
        """The whole content as one buffer: no copy while in memory, a read
        of the whole file once spilled (for writers that need bytes)."""
        if self._mem is not None:
            return memoryview(self._mem)
        return memoryview(self.pread(0, self._size))

    def fileno(self) -> int | None:
        """The spilled file's descriptor (None while in memory)."""
        return self._file.fileno() if self._file is not None else None

    def close(self) -> None:
        """Let the temporary file go (it has no name: closing deletes it)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._mem = bytearray()
            self._size = 0


def _write_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    try:
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n
    except OSError as exc:
        raise scratch_error("write", exc) from exc


class ScratchFile:
    """An unnamed temporary file (``TMPDIR``) whose failures name that folder.

    Why: a full or unwritable ``TMPDIR`` under a writer that spools (a
    database backup makes every member into one before storing any) must be
    one line saying what is full, not "internal error: OSError".  Only this
    file's own calls are translated, so an ``OSError`` from anything else
    (the site's file store, the repository) keeps its own message."""

    def __init__(self, prefix: str) -> None:
        try:
            self._file = tempfile.TemporaryFile(prefix=prefix)  # noqa: SIM115
        except OSError as exc:
            raise scratch_error("make", exc) from exc

    def write(self, data: bytes | bytearray | memoryview) -> int:
        try:
            return self._file.write(data)
        except OSError as exc:
            raise scratch_error("write", exc) from exc

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        try:  # a buffered file flushes what it holds before it moves
            return self._file.seek(offset, whence)
        except OSError as exc:
            raise scratch_error("write", exc) from exc

    def read(self, n: int = -1) -> bytes:
        try:
            return self._file.read(n)
        except OSError as exc:
            raise scratch_error("read", exc) from exc

    def close(self) -> None:
        """Let it go.  Its content is thrown away: a flush that fails here
        (a full ``TMPDIR``) loses nothing, and raised over the error that
        ended the writer -- "internal error: OSError: No space left"."""
        with contextlib.suppress(OSError):
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ScratchSpool(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    """A ``SpooledTemporaryFile`` (in memory up to ``max_size``, then a file
    in ``TMPDIR``) whose own failures name that folder, as
    :class:`ScratchFile`'s do: ingest spools each big XML member so, and a
    full ``TMPDIR`` was "internal error: OSError: No space left on device"."""

    def rollover(self) -> None:
        try:
            super().rollover()
        except OSError as exc:
            raise scratch_error("write", exc) from exc

    def write(self, s: Any) -> int:
        try:
            return int(super().write(s))
        except OSError as exc:
            raise scratch_error("write", exc) from exc

    def seek(self, *args: Any) -> int:
        try:
            return int(super().seek(*args))
        except OSError as exc:
            raise scratch_error("write", exc) from exc

    def read(self, *args: Any) -> bytes:
        try:
            return bytes(super().read(*args))
        except OSError as exc:
            raise scratch_error("read", exc) from exc


class RecordSpool(ScratchFile):
    """Tuples of plain values (str, bytes, int, bool, None, tuples of them)
    appended to a temporary file and read back in order, one at a time: a
    list a writer needs again only at its end (one entry a member of a
    course, say) held on disk instead of in memory.  ``marshal``: this
    process writes and reads them, never anything else."""

    _LENGTH = struct.Struct("<I")

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix)
        self._size = 0
        self.count = 0

    def append(self, record: tuple[Any, ...]) -> None:
        data = marshal.dumps(record)
        self.seek(self._size)  # a read may have moved it
        self.write(self._LENGTH.pack(len(data)) + data)
        self._size += self._LENGTH.size + len(data)
        self.count += 1

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        """The records appended before this began, in order."""
        at, end, head = 0, self._size, self._LENGTH
        while at < end:
            self.seek(at)
            (length,) = head.unpack(self.read(head.size))
            record: tuple[Any, ...] = marshal.loads(self.read(length))
            yield record
            at += head.size + length


def scratch_error(action: str, exc: OSError) -> ScratchError:
    """One line naming the temporary folder that failed (a full disk, say)."""
    where = tempfile.gettempdir()
    return ScratchError(f"cannot {action} a temporary file in {where} (TMPDIR): {exc.strerror}")


@runtime_checkable
class FileWriter(Protocol):
    """A backend that stores a file's bytes without their passing through
    Python (a folder: the kernel copies them)."""

    def write_file(self, key: str, fd: int, size: int) -> None:
        """As ``Backend.write`` of the first ``size`` bytes of open file ``fd``."""
        ...


def write_spool(backend: Backend, key: str, spool: Spool) -> None:
    """Store ``spool``'s content under ``key`` as ``backend.write`` would.

    A spilled spool goes to a folder backend by file (no 16 MiB buffer);
    every other backend, and every wrapper (sealing needs the whole pack, a
    fault-injecting test wrapper its ``write``), gets the bytes as before."""
    fd = spool.fileno()
    if fd is not None and isinstance(backend, FileWriter):
        backend.write_file(key, fd, spool.size)
    else:
        backend.write(key, spool.view())
