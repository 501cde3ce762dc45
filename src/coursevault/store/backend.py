"""The storage backend interface and the local-folder backend.

A backend stores whole files under slash-separated keys (``packs/ab/<id>``,
``index/<id>``, ``snapshots/<id>``, ``locks/<id>``, ``refs/<name>``, ``config``).
It is deliberately tiny (after restic): list, read (optionally a byte range),
write a whole file atomically, delete, exists.  Everything else lives above
it: retries and caching as backends wrapping a backend (``wrappers.py``), the
repository format in the repository, so an S3 backend only has to implement
these few calls.  ``tests/store/test_backend_contract.py`` is what each must pass.

Guarantees every backend must give:

* ``write`` is atomic and durable: after it returns the file is complete and
  survives a crash; a reader never sees a partial file.
* ``list`` never returns temporary or partial files (``list_temporary`` does).
* errors are raised as :class:`~coursevault.errors.BackendError`, never
  swallowed (restic #3646: a failed write must fail the command).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from coursevault.errors import BackendError, BadInputError, TruncatedError

TEMP_PREFIX = ".tmp-"


@runtime_checkable
class Backend(Protocol):
    """What the repository needs from a place that stores files."""

    def location(self) -> str:
        """A human-readable description (path or URL) for messages."""
        ...

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Yield ``(key, size)`` for every complete file whose key starts with
        ``prefix``, in no order callers may count on (S3 gives key order; a
        folder, its file system's), one at a time: a listing of millions of
        files must not be held whole."""
        ...

    def list_temporary(self) -> Iterator[str]:
        """Keys of leftover temporary files (killed writers), which ``list``
        never yields: check reports them, prune deletes them.  A backend
        whose writes leave none (S3's are atomic) yields nothing."""
        ...

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """Return the file's bytes, or ``length`` bytes from ``offset``.

        Raises ``FileNotFoundError`` if the key does not exist,
        :class:`~coursevault.errors.TruncatedError` if it holds fewer than
        ``length`` bytes from ``offset``, and ``BackendError`` if it cannot
        be read.
        """
        ...

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` under ``key`` atomically and durably (replacing any file)."""
        ...

    def create(self, key: str, data: bytes) -> bool:
        """Store ``data`` only if ``key`` does not exist; return whether it was created."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...

    def exists(self, key: str) -> bool: ...

    def compare_and_swap(self, key: str, expected: bytes | None, data: bytes) -> bool:
        """Replace ``key`` by ``data`` only if it currently holds ``expected``
        (``None``: does not exist).  Used for refs, so two writers never lose an update."""
        ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_file(src: int, dst: int, size: int) -> None:
    """Copy ``size`` bytes from the start of ``src`` to ``dst``'s position:
    in the kernel where it can (``sendfile`` between regular files), else
    through a 1 MiB buffer."""
    offset = 0
    try:
        while offset < size:
            sent = os.sendfile(dst, src, offset, size - offset)
            if sent == 0:
                break
            offset += sent
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EXDEV) or offset:
            raise
    while offset < size:
        piece = os.pread(src, min(1 << 20, size - offset), offset)
        if not piece:
            raise OSError(errno.EIO, f"source file ends at {offset} of {size} bytes")
        view = memoryview(piece)
        while view:
            view = view[os.write(dst, view) :]
        offset += len(piece)


class LocalBackend:
    """A repository in a local folder (or any mounted file system)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._root = str(self.root)

    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise BackendError(f"invalid storage key {key!r}")
        return self.root / key

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        if not base.is_dir():
            return
        try:
            yield from self._scan(str(base))
        except OSError as exc:
            raise BackendError(f"cannot list {base}: {exc.strerror}") from exc

    def _scan(self, folder: str) -> Iterator[tuple[str, int]]:
        """The files under ``folder`` in the order the file system gives them,
        one entry at a time: a folder's names are never all held at once
        (a site's ``snapshots/`` holds millions: listing them into a list and
        sorting it was most of what check and prune held at that size)."""
        rel = os.path.relpath(folder, self.root)
        subfolders: list[str] = []
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if entry.is_dir():
                        subfolders.append(entry.path)
                        continue
                    if entry.name.startswith("."):
                        continue  # temporary files and local lock helpers
                    size = entry.stat().st_size
                except FileNotFoundError:
                    continue  # deleted while listing
                key = entry.name if rel == "." else f"{rel}/{entry.name}"
                yield key.replace(os.sep, "/"), size
        for sub in sorted(subfolders):
            with contextlib.suppress(FileNotFoundError):  # removed while listing
                yield from self._scan(sub)

    def list_temporary(self) -> Iterator[str]:
        """Leftover temporary files (from killed writers), for check and prune.

        Streamed like :meth:`list`: ``os.walk`` holds each folder's names in a
        list, 196 MiB of them for a site's 1.6 million snapshot records."""
        try:
            yield from self._scan_temporary(self._root)
        except OSError as exc:
            raise BackendError(f"cannot list {exc.filename or self.root}: {exc.strerror}") from exc

    def _scan_temporary(self, folder: str) -> Iterator[str]:
        subfolders: list[str] = []
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted while listing
                if is_dir:
                    subfolders.append(entry.path)
                elif entry.name.startswith(TEMP_PREFIX):
                    rel = os.path.relpath(entry.path, self._root)
                    yield rel.replace(os.sep, "/")
        for sub in subfolders:
            # removed while listing, or not ours to read (a lost+found at the
            # root of the repository's own file system): skipped, as os.walk did
            with contextlib.suppress(FileNotFoundError, PermissionError):
                yield from self._scan_temporary(sub)

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if key.startswith("/") or ".." in key.split("/"):
            raise BackendError(f"invalid storage key {key!r}")
        path = os.path.join(self._root, key)  # a str: a Path costs more than a block's read
        try:
            with open(path, "rb") as f:
                if offset:
                    f.seek(offset)
                data = f.read() if length is None else f.read(length)
        except FileNotFoundError:
            raise
        except NotADirectoryError:  # a file where a folder of the key would be: no such key
            raise FileNotFoundError(path) from None
        except OSError as exc:
            raise BackendError(f"cannot read {path}: {exc.strerror}") from exc
        if length is not None and len(data) != length:
            raise TruncatedError(
                f"short read from {path}: wanted {length} bytes at {offset}, got {len(data)}"
            )
        return data

    def _write_temp(
        self, path: Path, data: bytes | bytearray | memoryview, source: tuple[int, int] | None = None
    ) -> Path:
        """A durable temporary file beside ``path`` holding ``data`` (or the
        first ``size`` bytes of open file ``fd`` when ``source`` is ``(fd, size)``)."""
        parent = path.parent
        if not parent.is_dir():
            parent.mkdir(parents=True, exist_ok=True)
            _fsync_dir(parent.parent)
        tmp = parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            if source is not None:
                _copy_file(source[0], fd, source[1])
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(fd)
        return tmp

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        path = self._path(key)
        try:
            tmp = self._write_temp(path, data)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise BackendError(f"cannot write {path}: {exc.strerror}") from exc

    def write_file(self, key: str, fd: int, size: int) -> None:
        """``write`` of the first ``size`` bytes of open file ``fd``, copied by
        the kernel (a spilled pack, store/spool.py): no buffer of its size."""
        path = self._path(key)
        try:
            tmp = self._write_temp(path, b"", (fd, size))
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise BackendError(f"cannot write {path}: {exc.strerror}") from exc

    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        try:
            tmp = self._write_temp(path, data)
            try:
                os.link(tmp, path)  # atomic "create if absent"
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
            _fsync_dir(path.parent)
            return True
        except OSError as exc:
            raise BackendError(f"cannot create {path}: {exc.strerror}") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BackendError(f"cannot delete {path}: {exc.strerror}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def compare_and_swap(self, key: str, expected: bytes | None, data: bytes) -> bool:
        path = self._path(key)
        lock_path = path.parent / ".cas-lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(lock_path, "a+b") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    current: bytes | None = path.read_bytes()
                except FileNotFoundError:
                    current = None
                if current != expected:
                    return False
                self.write(key, data)
                return True
        except OSError as exc:
            raise BackendError(f"cannot update {path}: {exc.strerror}") from exc


def require_empty(backend: Backend) -> None:
    """Nothing at ``backend`` that a new repository would start over (``init``,
    and ``sync`` making its destination): a repository whose config was
    lost had its journal's entries deleted by the new one's fresh journal,
    every snapshot gone from every listing -- or, sealed, its files read as
    corrupt under a plain config.  A location holding a ``config`` is left
    to ``create`` to refuse as an existing repository (RepositoryExistsError,
    which a sync racing another to make its destination takes as made)."""
    root = getattr(backend, "root", None)  # a folder's (LocalBackend)
    if isinstance(root, Path) and root.exists() and not root.is_dir():
        raise BadInputError(f"{root} is a file: a repository is made in an empty or new folder")
    if backend.exists("config"):
        return
    for key, _size in backend.list(""):
        raise BadInputError(
            f"{backend.location()} is not empty (it holds {key}): a repository is made in an "
            "empty or new folder; a repository whose config is missing is not made anew over "
            "its files")

