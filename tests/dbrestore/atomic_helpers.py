"""What test_atomic.py needs to prove ``restore --db`` all or nothing: the
state of a site to compare before and after, and the restore's steps, each
of which can be made to fail or to SIGKILL the process.

A *site state* is every prefixed table's row count and a digest of its rows
in id order, the file store's listing (path and size of every content) and
everything under ``DATAROOT/temp``: a failed restore must leave all three
exactly as they were.  (Sequences are not state: PostgreSQL and MariaDB
hand out ids outside transactions, so a rolled-back restore has used some,
as any rolled-back insert of Moodle's does.)

The *steps* of a restore are the calls that change something: every
``SiteWriter.insert``/``update``/``delete`` (before it; deletes are
``--replace``'s), every ``Staging.stage``
(before it), ``Staging.publish`` (before it, and after each content it
moves into filedir), and the commit of the restore's transaction (before
it, and after it: "committed", where an error is one whose outcome the
restore cannot know, as a connection lost while the server commits).
:class:`Steps` numbers them and acts at one of them.  The restore's code
carries no hook for this: the wrappers are test code.

:func:`run_forked` runs the real CLI in a child process with the same
steps, SIGKILLing it at one -- as a power cut or the OOM killer would stop
it: no ``finally``, no rollback sent, a staging folder left behind.
"""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa


class InjectedFault(Exception):
    """The failure a test injected at a step (not a coursevault error: what
    a bug, a lost connection or an interrupt would raise)."""


@dataclass(frozen=True)
class SiteState:
    """Tables (name -> (rows, digest)), the file store (path -> size) and
    the temp folder's entries."""

    tables: dict[str, tuple[int, str]]  # tables with rows only
    filedir: dict[str, int]
    temp: tuple[str, ...]

    def differences(self, other: SiteState) -> list[str]:
        """What changed from self to other, one line each (empty: equal)."""
        out = []
        for name in sorted(set(self.tables) | set(other.tables)):
            a, b = self.tables.get(name), other.tables.get(name)
            if a != b:
                out.append(f"table {name}: {a} -> {b}")
        for path in sorted(set(self.filedir) | set(other.filedir)):
            a2, b2 = self.filedir.get(path), other.filedir.get(path)
            if a2 != b2:
                out.append(f"filedir/{path}: {a2} -> {b2}")
        if self.temp != other.temp:
            out.append(f"temp: {list(self.temp)} -> {list(other.temp)}")
        return out


class SiteProbe:
    """Reads a site's state (its database at ``url``, its data folder) again
    and again through one engine: the tables are listed once."""

    def __init__(self, url: str, dataroot: str, prefix: str = "mdl_") -> None:
        self.url = url
        self.dataroot = dataroot
        self.prefix = prefix
        self.engine = sa.create_engine(url)
        with self.engine.connect() as conn:
            self.names = sorted(
                n for n in sa.inspect(conn).get_table_names() if n.startswith(prefix)
            )

    def state(self) -> SiteState:
        with self.engine.connect() as conn:
            counts = _row_counts(conn, self.names)
            tables = {
                name[len(self.prefix) :]: (counts[name], _rows_digest(conn, name))
                for name in self.names
                if counts[name]
            }
        return SiteState(
            tables,
            _listing(os.path.join(self.dataroot, "filedir")),
            _entries(os.path.join(self.dataroot, "temp")),
        )

    def named_contents(self) -> set[str]:
        """Every content hash a ``files`` row names."""
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(f"SELECT DISTINCT contenthash FROM {self.prefix}files")
            return {str(r[0]) for r in rows}

    def close(self) -> None:
        self.engine.dispose()


def _row_counts(conn: sa.Connection, names: list[str]) -> dict[str, int]:
    """Every table's rows, in statements of 100 tables (one query each
    would be most of the time a state takes)."""
    out: dict[str, int] = {}
    for start in range(0, len(names), 100):
        batch = names[start : start + 100]
        sql = " UNION ALL ".join(f"SELECT '{n}', COUNT(*) FROM {n}" for n in batch)
        out.update((str(r[0]), int(r[1])) for r in conn.exec_driver_sql(sql))
    return out


def _rows_digest(conn: sa.Connection, name: str) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for row in conn.exec_driver_sql(f"SELECT * FROM {name} ORDER BY id"):
        # one driver, one type per column: equal rows have equal reprs
        digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def _listing(root: str) -> dict[str, int]:
    out = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, root)] = os.path.getsize(path)
    return out


def _entries(root: str) -> tuple[str, ...]:
    out = []
    for folder, dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(folder, n), root) + "/" for n in dirs]
        out += [os.path.relpath(os.path.join(folder, n), root) for n in files]
    return tuple(sorted(out))


class Steps:
    """Numbers a restore's steps (``log``) and acts at one (``at``: its
    number, 1-based, or its text: the first step that reads so); ``action``
    raises :class:`InjectedFault` by default."""

    def __init__(self, action: Callable[[int, str], None] | None = None) -> None:
        self.log: list[str] = []
        self.at: int | str | None = None
        self.action = action or _raise

    def __call__(self, what: str) -> None:
        self.log.append(what)
        if self.at == len(self.log) or (self.at == what and what not in self.log[:-1]):
            self.action(len(self.log), what)

    def reset(self, at: int | str | None) -> None:
        self.log = []
        self.at = at


def share_engines(setattr_: Callable[[Any, str, Any], None]) -> Callable[[], None]:
    """Make every restore of a test loop open its database through one
    engine per URL (returns what disposes of them).  A restore opens its
    own; SQLAlchemy caches compiled statements per engine, so a loop of
    hundreds of restores would compile each statement hundreds of times
    (half the time of a small course's restore).  The transaction, its
    rollback and the file staging are the restore's own either way."""
    from coursevault.moodledb import connect

    engines: dict[str, sa.Engine] = {}
    open_engine = connect.open_engine

    def shared(url: str, **options: Any) -> sa.Engine:
        if url not in engines:
            engines[url] = open_engine(url, **options)
        return engines[url]

    setattr_(connect, "open_engine", shared)

    def dispose() -> None:
        for engine in engines.values():
            engine.dispose()

    return dispose


def _raise(number: int, what: str) -> None:
    raise InjectedFault(f"injected at step {number} ({what})")


def install(
    steps: Callable[[str], None], setattr_: Callable[[Any, str, Any], None] = setattr
) -> None:
    """Wrap the restore's writing calls so each is a step (``setattr_`` is
    pytest's ``monkeypatch.setattr`` in a test, to be undone after it)."""
    from coursevault.moodledb import filedir
    from coursevault.moodledb.sitewriter import SiteWriter

    def before(what: Callable[..., str], method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            steps(what(*args))
            return method(*args, **kwargs)

        return wrapper

    setattr_(
        SiteWriter, "insert", before(lambda _w, table, *_a: f"insert {table}", SiteWriter.insert)
    )
    setattr_(
        SiteWriter, "update", before(lambda _w, table, *_a: f"update {table}", SiteWriter.update)
    )
    setattr_(
        SiteWriter, "delete", before(lambda _w, table, *_a: f"delete {table}", SiteWriter.delete)
    )
    setattr_(
        filedir.Staging,
        "stage",
        before(lambda _s, sha1, *_a: f"stage {sha1}", filedir.Staging.stage),
    )
    setattr_(filedir.Staging, "publish", before(lambda _s: "publish", filedir.Staging.publish))
    fsync_dir = filedir._fsync_dir

    def moved(path: str) -> None:  # publish syncs a folder after each move
        fsync_dir(path)
        steps(f"moved into {os.path.basename(path)}")

    setattr_(filedir, "_fsync_dir", moved)
    commit = sa.engine.Connection._commit_impl

    def committing(conn: sa.engine.Connection) -> None:
        steps("commit")
        commit(conn)
        steps("committed")

    setattr_(sa.engine.Connection, "_commit_impl", committing)


def run_forked(
    argv: list[str], log: str, kill_at: int | None = None, signum: int = signal.SIGKILL
) -> tuple[bool, int | None, list[str]]:
    """Run the real CLI (``main(argv)``) in a forked child with the steps
    installed, sent ``signum`` (SIGKILL; SIGINT: a Ctrl-C) at step
    ``kill_at``, the step then going on; stdout and stderr go to ``log``.
    Returns (killed, exit code, the steps it reached).  Forked, not started:
    the child has everything imported already, so a run costs what the
    restore costs."""
    from coursevault.cli.app import main

    trace = log + ".steps"
    pid = os.fork()
    if pid == 0:  # pragma: no cover -- the child
        code = 99
        try:
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, 1)
            os.dup2(out, 2)
            # pytest's capture replaced sys.stdout/stderr, not only fds 1 and 2
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            fd = os.open(trace, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            steps = Steps(lambda _n, _w: os.kill(os.getpid(), signum))
            steps.at = kill_at

            def traced(what: str) -> None:  # unbuffered: the trace outlives the kill
                os.write(fd, f"{what}\n".encode())
                steps(what)

            install(traced)
            code = main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    with open(trace) as f:
        return killed, code, f.read().splitlines()

