"""Repository locks: many writers at once, deletion alone.

Adding objects and snapshots never conflicts (packs and index files have
content-derived names), so writers and readers take *shared* locks and run side
by side.  Only operations that delete (prune, forget) take an *exclusive* lock,
and only when no other lock is live.  A lock is a small JSON file under
``locks/``; it is refreshed while its holder works, so a lock whose holder died
is recognised as stale: its process is gone (same host) or it has not been
refreshed for ``STALE_AFTER`` seconds (any host).  ``coursevault unlock``
removes stale locks.

Acquisition is "create, then look": after creating its own file a process lists
the others; on conflict it removes its own and fails.  Two conflicting
processes may both back off, but never both proceed.  A caller may wait
instead of failing (a nightly ingest queued behind a prune rather than
skipping a night): it tries again with growing, jittered pauses until its
deadline, holding nothing between tries.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from coursevault.errors import BackendError, BadInputError, LockHeldError
from coursevault.store.backend import Backend

STALE_AFTER = 30 * 60
REFRESH_EVERY = 5 * 60
# Pauses between tries while waiting: from FIRST_RETRY, doubling up to
# LAST_RETRY (each try writes, lists and deletes a lock file: a few requests on
# S3 every 10 s at most).
FIRST_RETRY = 0.1
LAST_RETRY = 10.0
# pid_t is 32 bits wherever this runs (Linux caps pids at 2**22)
MAX_PID = 2**31 - 1


@dataclass(frozen=True)
class LockInfo:
    key: str
    hostname: str
    pid: int
    exclusive: bool
    time: float
    operation: str

    def is_stale(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if now - self.time > STALE_AFTER:
            return True
        if self.hostname == socket.gethostname():
            return not _pid_alive(self.pid)
        return False

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        try:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time))
        except (OverflowError, ValueError, OSError):  # a time no clock gives (year 10**292)
            when = f"time {self.time!r}"
        return f"{kind} lock by {self.operation} (pid {self.pid} on {self.hostname}, {when})"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ", 1)[1][:1] != b"Z"
    except OSError:
        return True


def list_locks(backend: Backend) -> list[LockInfo]:
    locks = []
    for key, _size in backend.list("locks/"):
        try:
            data = json.loads(backend.read(key))
            info = LockInfo(
                key,
                str(data["hostname"]),
                int(data["pid"]),
                bool(data["exclusive"]),
                float(data["time"]),
                str(data.get("operation", "?")),
            )
            # what no process writes: a pid kill() cannot take (OverflowError
            # at every command, even unlock) or that names a group (0, -1);
            # a time that is not a number (NaN: never stale, and unprintable)
            if not 0 < info.pid <= MAX_PID or not math.isfinite(info.time):
                raise ValueError(f"lock {key}: pid {info.pid}, time {info.time}")
            locks.append(info)
        except FileNotFoundError:
            continue  # released while we listed
        except (ValueError, KeyError, TypeError):
            # unreadable lock file: count it as a live foreign lock that has a time of 0,
            # i.e. stale, so unlock can remove it
            locks.append(LockInfo(key, "?", 0, True, 0.0, "unreadable"))
    return locks


class Lock:
    """A held lock; use as a context manager or call ``release``."""

    def __init__(self, backend: Backend, exclusive: bool, operation: str) -> None:
        self.backend = backend
        self.exclusive = exclusive
        self.operation = operation
        self.key = f"locks/{secrets.token_hex(16)}"
        self._last_refresh = 0.0
        self._held = False
        self.waited = False  # acquire() found a conflict and tried again
        # told, instead of raising, when the lock cannot be removed after the
        # work it guarded succeeded (the repository's notices)
        self.on_stuck: Callable[[str], None] | None = None

    def _payload(self) -> bytes:
        return json.dumps(
            {
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "exclusive": self.exclusive,
                "time": time.time(),
                "operation": self.operation,
            }
        ).encode()

    def acquire(
        self,
        wait: float = 0.0,
        *,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Lock:
        """Take the lock, waiting up to ``wait`` seconds (``math.inf``: as long
        as it takes) while a live conflicting lock is held; then raise
        LockHeldError naming the holder.  ``sleep`` and ``clock`` are for tests."""
        if not wait >= 0:  # NaN too
            raise BadInputError(f"a lock wait must be 0 or more seconds, not {wait}")
        deadline = clock() + wait
        pause = FIRST_RETRY
        while True:
            holder = self._try()
            if holder is None:
                return self
            left = deadline - clock()
            if left <= 0:
                waited = f" (waited {wait:g} s)" if wait else ""
                raise LockHeldError(
                    f"repository is locked: {holder.describe()}{waited}; "
                    "if that process is gone, run `coursevault unlock`"
                )
            self.waited = True
            # jitter: two waiters that back off from each other do not meet again
            sleep(min(pause * random.uniform(0.5, 1.0), left))
            pause = min(pause * 2, LAST_RETRY)

    def _try(self) -> LockInfo | None:
        """Create, then look: None if held now, else the lock that conflicts."""
        # held before the write: an interrupt right after it must not leave a
        # lock that release() thinks it never took (deleting none is no error)
        self._held = True
        self.backend.write(self.key, self._payload())
        self._last_refresh = time.time()
        for other in list_locks(self.backend):
            if other.key == self.key or other.is_stale():
                continue
            if self.exclusive or other.exclusive:
                self.release()
                return other
        return None

    def refresh(self, force: bool = False) -> None:
        """Rewrite the lock's time so others do not think us dead (cheap to call often)."""
        if self._held and (force or time.time() - self._last_refresh > REFRESH_EVERY):
            self.backend.write(self.key, self._payload())
            self._last_refresh = time.time()

    def release(self) -> None:
        if self._held:
            self.backend.delete(self.key)
            self._held = False

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        self.let_go(failing=exc_type is not None)

    def let_go(self, failing: bool) -> None:
        """Release at the end of the work it guarded.  A lock the storage
        will not delete (a service failing at the very end) must not turn
        work that is done into a failure -- a nightly script would run a
        committed backup again -- nor hide the error a ``failing`` command
        is ending with: either way it stays behind, stale once its process
        has ended (``coursevault unlock``), and ``on_stuck`` is told."""
        try:
            self.release()
        except BackendError as err:
            self._held = False
            if self.on_stuck is None and not failing:
                raise
            if self.on_stuck is not None and not failing:
                self.on_stuck(
                    f"lock {self.key} could not be removed ({err}): the {self.operation} "
                    "is done; the lock is stale once this process has ended on this host, "
                    f"after {STALE_AFTER // 60} minutes on others (`coursevault unlock` "
                    "removes it)"
                )


def remove_stale_locks(backend: Backend, remove_all: bool = False) -> list[LockInfo]:
    removed = []
    for lock in list_locks(backend):
        if remove_all or lock.is_stale():
            backend.delete(lock.key)
            removed.append(lock)
    return removed
