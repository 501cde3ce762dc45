"""Where one ``coursevault backup --db`` process spends its wall time (issue 21).

    eval "$(bash scripts/refsite)"
    .venv/bin/python benchmarks/dbbackup_phases.py [--course 2] [--url URL]

Runs, in this process, what the ``coursevault`` console script runs
(cli.app.run: imports, then main(), then exit) twice: a full backup into a
new repository, then the same course again (the unchanged night).  Imports
are timed package by package, in the order the command needs them; the run
itself is split into exclusive categories by wrapping the functions that do
each kind of work (a wrapped function's time is its own minus the wrapped
functions it calls), so the categories add up to main()'s time.  Start-up
(before the first import) and exit are measured from outside: this script
re-executes itself, once per backup, with the time it was started.

The wrappers cost a few microseconds a call (some 3,000 calls): the total
is 2-4 % above the plain command's.  Use a database nobody else is creating
copies of (``CREATE DATABASE ... TEMPLATE`` blocks new connections to the
template for seconds): ``--url`` names one.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Wrapped = Callable[..., Any]


class Phases:
    """Exclusive wall time per category: entering a category pauses the one below."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.stack = ["other: Python between the parts below (ingest, plan, CLI)"]
        self.last = time.perf_counter()

    def switch(self, to: str | None) -> None:
        now = time.perf_counter()
        top = self.stack[-1]
        self.seconds[top] = self.seconds.get(top, 0.0) + now - self.last
        self.last = now
        if to is None:
            self.stack.pop()
        else:
            self.stack.append(to)

    def wrap(self, owner: Any, name: str, category: str, generator: bool = False) -> None:
        original = getattr(owner, name)
        static = isinstance(getattr(owner, "__dict__", {}).get(name), staticmethod)
        phases = self

        if generator:

            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                it = original(*args, **kwargs)
                while True:
                    phases.switch(category)
                    try:
                        value = next(it)
                    except StopIteration:
                        phases.switch(None)
                        return
                    except BaseException:
                        phases.switch(None)
                        raise
                    phases.switch(None)
                    yield value

        else:

            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                phases.switch(category)
                try:
                    return original(*args, **kwargs)
                finally:
                    phases.switch(None)

        setattr(owner, name, staticmethod(wrapper) if static else wrapper)


IMPORTS = [
    ("typer (and the click it vendors)", ["typer"]),
    (
        "coursevault's CLI, API, store, tree, snapshot (lxml, zstandard, blake3)",
        ["coursevault.cli.app"],
    ),
    ("SQLAlchemy", ["sqlalchemy"]),
    (
        "psycopg (libpq) and SQLAlchemy's PostgreSQL dialect",
        ["psycopg", "sqlalchemy.dialects.postgresql.psycopg"],
    ),
    (
        "coursevault's definitions, structure API, moodledb (core tasks)",
        ["coursevault.definitions.run"],
    ),
]


def instrument(phases: Phases) -> None:
    import psycopg
    import sqlalchemy as sa

    from coursevault.definitions import run as definitions_run
    from coursevault.moodledb import site
    from coursevault.snapshot import dbsource, ingest
    from coursevault.store import backend, catalog, ids, pack, repository
    from coursevault.structure import registry

    w = phases.wrap
    w(site.SiteReader, "_fetch", "queries: round trips to PostgreSQL, rows as dicts", True)
    sql = "SQL text: SQLAlchemy compiling, psycopg quoting values"
    w(sa.sql.elements.ClauseElement, "compile", sql)
    w(psycopg.ClientCursor, "mogrify", sql)
    connect = "connecting: engine, connection, read transaction"
    w(site, "open_engine", connect)
    w(sa.engine.Engine, "connect", connect)
    w(site, "_begin_snapshot", connect)
    w(definitions_run, "start_run", "the site, the course row, the settings")
    w(
        dbsource.DatabaseSource,
        "members",
        "making members: definitions, engine, XML writer (Python)",
        True,
    )
    w(registry.PluginGroup, "__getitem__", "importing the definitions of the course's plugins")
    w(ingest, "_store_xml", "cutting XML members into records (scanner, lxml check)")
    w(ingest, "_store_blob", "files: reading the file store, SHA-1, FastCDC")
    for module in list(sys.modules.values()):
        if getattr(module, "object_id", None) is ids.object_id:
            w(module, "object_id", "hashing: BLAKE3 object ids")
    w(pack.PackWriter, "_seal", "compressing: zstd blocks")
    cat = "catalog (SQLite): stored inputs, index rows, commit"
    for name, value in vars(catalog.Catalog).items():
        if callable(value) and not name.startswith("__"):
            w(catalog.Catalog, name, cat)
    w(repository.Repository, "sync_catalog", cat)
    w(repository.Repository, "writer", "write session: open, its dictionary (a night: the walk)")
    w(backend.LocalBackend, "write", "writing pack, index, snapshot files (fsync)")


def measure(started: float, argv: list[str]) -> None:
    """One backup in this process; prints tab-separated rows."""
    first = time.time()
    imports = {}
    for label, modules in IMPORTS:
        t = time.perf_counter()
        for module in modules:
            __import__(module)
        imports[label] = time.perf_counter() - t
    from coursevault.cli import app

    rss_imports = _peak_rss_mb()
    phases = Phases()
    instrument(phases)
    gc.freeze()  # as cli.app.run does
    phases.last = time.perf_counter()
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = app.main(argv)
    phases.switch("done")
    total = time.perf_counter() - t
    phases.seconds.pop("done", None)
    if code != 0:
        raise SystemExit(f"the backup failed with exit code {code}")
    print(f"start-up: the interpreter, before the first import\t{first - started:.3f}")
    for label, seconds in imports.items():
        print(f"import {label}\t{seconds:.3f}")
    for label, seconds in sorted(phases.seconds.items(), key=lambda kv: -kv[1]):
        print(f"{label}\t{seconds:.3f}")
    print(f"(main() in all)\t{total:.3f}")
    print(f"MB peak RSS after the imports\t{rss_imports:.0f}")
    print(f"MB peak RSS at the end\t{_peak_rss_mb():.0f}")
    gc.freeze()  # as cli.app.run does
    print(f"ended\t{time.time():.4f}", flush=True)


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_one(argv: list[str]) -> tuple[list[tuple[str, float]], float, float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.time()
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(started), *argv],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    ended = time.time()
    rows = [
        (label, float(value))
        for label, value in (line.split("\t") for line in out.stdout.splitlines())
    ]
    exited = ended - dict(rows)["ended"]
    return [r for r in rows if r[0] != "ended"], exited, ended - started


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        measure(float(sys.argv[2]), sys.argv[3:])
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--course", type=int, default=2)
    ap.add_argument("--url", default=os.environ.get("COURSEVAULT_REFSITE_POSTGRES"))
    args = ap.parse_args()
    dataroot = os.environ["COURSEVAULT_REFSITE_DATAROOT"]
    with tempfile.TemporaryDirectory() as work:
        repo = str(Path(work) / "repo")
        os.environ["COURSEVAULT_CACHE"] = str(Path(work) / "cache")
        from coursevault.cli.app import main as cli_main

        with contextlib.redirect_stdout(io.StringIO()):
            cli_main(["init", repo])
        backup = [
            "backup",
            "-r",
            repo,
            "--db",
            args.url,
            "--dataroot",
            dataroot,
            "--course",
            str(args.course),
            "--json",
        ]
        for label in ("full backup, new repository", "the same course again, nothing changed"):
            rows, exited, wall = run_one(backup)
            print(f"== {label}: {wall:.3f} s wall (load average {os.getloadavg()[0]:.2f})")
            for name, value in [*rows, ("exit: the interpreter's shutdown", exited)]:
                if name.startswith("MB "):
                    print(f"{value:5.0f} MB  {name[3:]}")
                else:
                    print(f"{value:7.3f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
