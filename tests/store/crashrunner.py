"""Run coursevault commands and SIGKILL them at a chosen write step (for test_crash.py).

Started once per test as a subprocess, it imports the real CLI once and then
serves requests, one JSON line each on stdin:

    {"argv": [...], "log": path, "trace": path, "kill_at": n | null, "delay": s | null}

For each it forks a child that runs ``coursevault.cli.app.main(argv)`` with
stdout and stderr going to ``log``, and answers one JSON line:

    {"killed": bool, "code": exit code | null, "events": [...], "seconds": s}

Forking from a process that has imported everything already costs
milliseconds, where a fresh interpreter pays 0.5-1 s of imports: that is what
lets the suite kill at dozens of points within its time budget.

In the child every mutating call of the local backend (write, create,
delete, compare_and_swap) and every commit of the SQLite catalog is an
*event* -- before the call, after it, and for writes also once the
temporary file is durable but not yet renamed into place.  ``events`` lists
them in order (the uninjected run's list is what the test chooses kill
points from).  ``kill_at: n`` makes the child SIGKILL itself at event n
(1-based), exactly as a power cut or the OOM killer would stop it: no
``finally`` blocks, no atexit, a SQLite transaction left open.
``delay: s`` instead has this process SIGKILL the child after ``s`` seconds,
wherever it then is.

Fault injection lives here, in test code: production code must not read the
environment or carry test hooks (tests/test_source.py).
"""

from __future__ import annotations

import functools
import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coursevault.cli.app import main
from coursevault.store import catalog as catalog_module
from coursevault.store import journal
from coursevault.store.backend import LocalBackend

# Checkpoints (prune's, repair's) in parts of one name: a kill lands between
# the parts and the generation that lists them, as on a site of millions.
journal.PART_LINES = 1

MUTATING = ("write", "write_file", "create", "delete", "compare_and_swap")


class Events:
    """Numbers the child's write steps, records them durably, kills at one."""

    def __init__(self, trace: str, kill_at: int | None) -> None:
        # unbuffered and appended line by line: the trace must survive the kill
        self._fd = os.open(trace, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._kill_at = kill_at
        self.count = 0

    def __call__(self, what: str) -> None:
        self.count += 1
        os.write(self._fd, f"{what}\n".encode())
        if self.count == self._kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


class _CountedConnection:
    """A DB-API connection whose commits are events (the rest passes through)."""

    def __init__(self, raw: Any, events: Events) -> None:
        self._raw = raw
        self._events = events

    def commit(self) -> None:
        self._events("catalog commit: before")
        self._raw.commit()
        self._events("catalog commit: after")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _describe(name: str, args: tuple[Any, ...]) -> str:
    """``write packs/ab/<id>``; lock names are random, so a lock is ``locks/*``
    (the killed run's steps must read as the uninjected run's)."""
    key = str(args[0]) if args else "?"
    if key.startswith("locks/"):
        key = "locks/*"
    return f"{name} {key}"


def install(events: Events) -> None:
    """Wrap the backend's mutating calls and the catalog's commits."""

    def counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(self: LocalBackend, *args: Any, **kwargs: Any) -> Any:
            what = _describe(name, args)
            events(f"{what}: before")
            result = method(self, *args, **kwargs)
            events(f"{what}: after")
            return result

        return wrapper

    for name in MUTATING:
        setattr(LocalBackend, name, counted(name, getattr(LocalBackend, name)))

    write_temp = LocalBackend._write_temp

    def temp_written(self: LocalBackend, path: Path, data: Any, *source: Any) -> Path:
        tmp = write_temp(self, path, data, *source)
        if path.parent.name == "locks":
            path = path.parent / "*"
        events(f"temporary file of {os.path.relpath(path, self.root)}: written")
        return tmp

    LocalBackend._write_temp = temp_written  # type: ignore[method-assign]

    init = catalog_module.Catalog.__init__

    def catalog_init(self: catalog_module.Catalog, url: str) -> None:
        init(self, url)
        self._raw = _CountedConnection(self._raw, events)

    catalog_module.Catalog.__init__ = catalog_init  # type: ignore[method-assign]


def _child(request: dict[str, Any]) -> None:
    """Run one command in this (forked) process; never returns."""
    code = 99
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        install(Events(request["trace"], request.get("kill_at")))
        code = main(list(request["argv"]))
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(request)
        delay = request.get("delay")
        if delay is not None:
            pidfd = os.pidfd_open(pid)
            try:
                ready, _w, _x = select.select([pidfd], [], [], delay)
                if not ready:  # still running (not reaped yet, so the pid is its own)
                    os.kill(pid, signal.SIGKILL)
            finally:
                os.close(pidfd)
        _pid, status = os.waitpid(pid, 0)
        seconds = time.monotonic() - start
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        try:
            events = Path(request["trace"]).read_text().splitlines()
        except FileNotFoundError:
            events = []
        reply = {"killed": killed, "code": code, "events": events, "seconds": seconds}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
