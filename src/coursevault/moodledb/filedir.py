"""File contents into a site's file store, visible only with the rows that name them.

Moodle keeps a content once, at ``DATAROOT/filedir/ab/cd/<sha1>``, and a
``files`` row names it by ``contenthash``.  A restore must leave the file
store as it was when its transaction does not commit, so contents are
written under ``DATAROOT/temp/coursevault-restore-<token>/`` first (and
their sha1 checked), then moved into place just before the commit -- a
content already in the store is never written again.  A journal in the
staging folder lists what was moved in; :meth:`Staging.rollback` removes
exactly those after a failed commit, and :func:`recover` does so for a
process killed between the move and the commit: a listed content that no
``files`` row names is removed, one that a row names (the commit happened)
is kept.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO, cast

from coursevault.errors import BadInputError, SiteError

STAGING_PREFIX = "coursevault-restore-"
# a staging folder of a process this one cannot look at (another host or
# PID namespace) is taken for a killed restore's once its owner file is
# this old: longer than any restore runs
STALE_SECONDS = 24 * 3600
JOURNAL = "published"
OWNER = "pid"  # the bare pid, which every version reads
OWNER_RECORD = "owner.json"  # host, PID namespace, boot and database session


_SHA1 = re.compile(r"[0-9a-f]{40}")


def is_content_hash(text: str) -> bool:
    """Whether ``text`` can name a content: 40 lowercase hex digits."""
    return _SHA1.fullmatch(text) is not None


def content_path(dataroot: str, sha1: str) -> str:
    """Where the file store keeps a content.  Anything but a SHA-1 is
    refused: a backup's files.xml, a ``files`` row or a journal line
    naming ``/etc/x`` or ``../..`` would make this a path outside the file
    store (os.path.join restarts at an absolute part), which a restore
    then wrote, or removed."""
    if not is_content_hash(sha1):
        raise BadInputError(f"{sha1[:80]!r} is not a content hash (40 hex digits)")
    return os.path.join(dataroot, "filedir", sha1[0:2], sha1[2:4], sha1)


def require_file_store(dataroot: str) -> None:
    """Refuse a folder that is not a Moodle data folder (a dry run too)."""
    if not os.path.isdir(os.path.join(dataroot, "filedir")):
        raise SiteError(f"{dataroot}: no filedir/ in it: not a Moodle data folder")


class _Sha1Sink:
    """Where a dry run's contents go: only their SHA-1 is kept."""

    def __init__(self) -> None:
        self.digest = hashlib.sha1()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        pass


class Staging:
    """Contents of one restore, staged then published."""

    def __init__(self, dataroot: str, *, dry_run: bool = False) -> None:
        require_file_store(dataroot)
        self.dataroot = dataroot
        # a dry run's staging notes what it would write and writes nothing
        self.dry_run = dry_run
        self.folder = os.path.join(dataroot, "temp", STAGING_PREFIX + secrets.token_hex(6))
        self.staged: dict[str, str] = {}
        self.published: list[str] = []
        self.bytes_written = 0
        # the database session whose transaction these contents wait for
        # (its id on the server), so that recover() can wait for it in turn
        self.db_session: str | None = None

    def has(self, sha1: str) -> bool:
        return sha1 in self.staged or os.path.exists(content_path(self.dataroot, sha1))

    def stage(self, sha1: str, write: Callable[[BinaryIO], None], where: str) -> None:
        """Write a content the store lacks (``write`` fills the file), checking
        its sha1.  A file system's error (a full disk) is the site's: SiteError."""
        if self.has(sha1):
            return
        if self.dry_run:  # nothing written, but a content that would be refused is
            sink = _Sha1Sink()
            write(cast(BinaryIO, sink))
            if sink.digest.hexdigest() != sha1:
                raise BadInputError(f"{where}: content does not match its sha1 {sha1}")
            if not self.staged:
                self._check_writable(where)
            self.staged[sha1] = ""
            return
        path = os.path.join(self.folder, sha1)
        try:
            if not os.path.isdir(self.folder):
                os.makedirs(self.folder)
                # the record first: an earlier version that finds a bare pid
                # reads it; one that found JSON in "pid" took the folder for
                # a dead restore's and removed the contents it staged
                with open(os.path.join(self.folder, OWNER_RECORD), "w") as f:
                    json.dump(owner_record(self.db_session), f)
                with open(os.path.join(self.folder, OWNER), "w") as f:
                    f.write(str(os.getpid()))
            with open(path, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            digest = hashlib.sha1()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            size = os.path.getsize(path)
        except OSError as exc:
            raise SiteError(f"{self.dataroot}: cannot stage {where} for the file store: "
                            f"{exc.strerror or exc}") from exc
        if digest.hexdigest() != sha1:
            raise BadInputError(f"{where}: content does not match its sha1 {sha1}")
        self.bytes_written += size
        self.staged[sha1] = path

    def _check_writable(self, where: str) -> None:
        """A dry run's content to add: the folders the restore would write it
        to must take it -- a read-only dataroot was "would restore" and
        then exit 13 -- as far as access(2) says (a read-only mount, another
        owner's folder; not a full disk)."""
        for folder in (os.path.dirname(self.folder), os.path.join(self.dataroot, "filedir")):
            while not os.path.isdir(folder):  # DATAROOT/temp is made as it is needed
                folder = os.path.dirname(folder)
            if not os.access(folder, os.W_OK | os.X_OK):
                raise SiteError(f"{self.dataroot}: cannot stage {where} for the file store: "
                                f"{folder} is not writable")

    def publish(self) -> None:
        """Move every staged content into filedir, journalled first."""
        if not self.staged or self.dry_run:
            return
        try:
            self._publish()
        except OSError as exc:
            raise SiteError(f"{self.dataroot}: cannot move contents into the file store: "
                            f"{exc.strerror or exc}") from exc

    def _publish(self) -> None:
        journal = os.path.join(self.folder, JOURNAL)
        with open(journal, "w") as f:
            f.write("\n".join(self.staged) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for sha1, path in self.staged.items():
            target = content_path(self.dataroot, sha1)
            if os.path.exists(target):
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            # named before it moves: a Ctrl-C between the two left a content
            # in filedir that rollback did not know of (and nothing else would
            # remove: rollback discards the journal)
            self.published.append(sha1)
            _move(path, target)
            _fsync_dir(os.path.dirname(target))

    def rollback(self) -> None:
        """Remove what :meth:`publish` moved in (the commit failed)."""
        for sha1 in self.published:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(content_path(self.dataroot, sha1))
        self.published.clear()
        self.discard()

    def discard(self) -> None:
        """Forget the staging folder (after a commit, or with nothing published)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def recover(dataroot: str, named: Callable[[Iterable[str]], set[str]],
            session_alive: Callable[[str], bool] = lambda _s: False) -> int:
    """Finish what killed restores left: remove contents a journal lists
    that no ``files`` row names (``named`` answers which are named), then
    the staging folders.  Returns the contents removed.

    A folder is left while its restore may still run or commit: its
    process lives (or cannot be looked at: another host or PID namespace,
    for STALE_SECONDS), or its database session does (``session_alive``):
    a client killed while the server commits leaves the server committing,
    and the rows that name the contents appear only then."""
    temp = os.path.join(dataroot, "temp")
    removed = 0
    if not os.path.isdir(temp):
        return 0
    for entry in sorted(os.listdir(temp)):
        if not entry.startswith(STAGING_PREFIX):
            continue
        folder = os.path.join(temp, entry)
        owner = _owner(folder)
        if _owner_alive(folder, owner):
            continue  # a restore running now
        session = owner.get("db_session")
        if session and session_alive(str(session)):
            continue  # its process is gone, its transaction is not over
        journal = os.path.join(folder, JOURNAL)
        if os.path.exists(journal):
            with open(journal) as f:  # a line that is no content hash names no content
                listed = [line.strip() for line in f if is_content_hash(line.strip())]
            keep = named(listed)
            for sha1 in listed:
                if sha1 not in keep:
                    try:
                        os.unlink(content_path(dataroot, sha1))
                        removed += 1
                    except FileNotFoundError:
                        pass
        shutil.rmtree(folder, ignore_errors=True)
    return removed


def trash_unnamed(dataroot: str, hashes: Iterable[str],
                  named: Callable[[Iterable[str]], set[str]]) -> int:
    """After a commit that deleted ``files`` rows (``restore --replace``):
    move each of their contents that no row names any more into
    ``DATAROOT/trashdir/ab/cd/<sha1>``, where Moodle's file system puts a
    content its last file leaves (``file_system_filedir::remove_file``),
    its cron empties, and it takes one back from if a file names it again.
    Returns the contents moved."""
    wanted = sorted(h for h in set(hashes) if is_content_hash(h))
    if not wanted:
        return 0
    keep: set[str] = set()
    for start in range(0, len(wanted), 500):  # a bounded IN list per query
        keep |= named(wanted[start:start + 500])
    moved = 0
    for sha1 in wanted:
        if sha1 in keep:
            continue
        target = os.path.join(dataroot, "trashdir", sha1[0:2], sha1[2:4], sha1)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(content_path(dataroot, sha1), target)
        except FileNotFoundError:
            continue
        moved += 1
    return moved


def owner_record(db_session: str | None) -> dict[str, Any]:
    """Who stages into a folder: enough to tell, from another process,
    whether it still runs -- a pid means nothing from another host or PID
    namespace (containers, several hosts on one NFS dataroot)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "pidns": _pid_namespace(),
            "boot": _boot_id(), "db_session": db_session}


def _owner(folder: str) -> dict[str, Any]:
    try:
        with open(os.path.join(folder, OWNER_RECORD)) as f:
            found = json.load(f)
        if isinstance(found, dict):
            return found
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(folder, OWNER)) as f:
            text = f.read().strip()
    except OSError:
        return {}
    if text.isdigit():  # an earlier version's folder: a pid on this host
        return {"pid": int(text), "host": socket.gethostname(), "pidns": _pid_namespace(),
                "boot": _boot_id()}
    return {}


def _owner_alive(folder: str, owner: dict[str, Any]) -> bool:
    try:
        pid = int(owner.get("pid") or 0)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    if owner.get("host") != socket.gethostname() or owner.get("pidns") != _pid_namespace():
        # its process cannot be looked at from here: alive until stale
        try:
            age = time.time() - os.path.getmtime(os.path.join(folder, OWNER_RECORD))
        except OSError:
            return False
        return age < STALE_SECONDS
    if owner.get("boot") != _boot_id() or pid == os.getpid():
        return False  # this host booted since, or it is this process's own
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _move(path: str, target: str) -> None:
    """Move a staged content into filedir.  DATAROOT/temp may be another
    file system (a local disk or tmpfs under an NFS dataroot), where a
    rename fails (EXDEV): then it is copied beside the target, synced and
    renamed there, as Moodle's own file system writes a content."""
    try:
        os.replace(path, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    beside = f"{target}.tmp-{secrets.token_hex(4)}"
    try:
        with open(path, "rb") as src, open(beside, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(beside, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(beside)
    os.unlink(path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
