"""``restore --db`` peak RSS and CPU of two versions side by side (issue 23:
"peak RSS flat from S to M").

    .venv/bin/python benchmarks/dbrestore_memory_bench.py --before SRC --after SRC \
        --site S=sqlite:///S/site.db,S/data,S/repo,SNAPSHOT \
        --site M=sqlite:///M/site.db,M/data,M/repo,SNAPSHOT \
        --site M-pg=postgresql+psycopg://postgres@127.0.0.1/NAME,PG/data,PG/repo,SNAPSHOT \
        [--rounds 3]

Each ``--before``/``--after`` is a ``src`` folder of coursevault (a git
worktree at the commit to measure): its restore runs as the CLI with
that folder first on ``PYTHONPATH``.  A site is a
demo site (``coursevault demo-site``) whose course was backed up into the
repository given; each restore goes into a fresh copy of the site (SQLite:
the file copied; PostgreSQL: ``CREATE DATABASE ... TEMPLATE``), the two
versions alternately, ``--rounds`` times, under ``/usr/bin/time -v``
(start-up included).  Printed: the median peak RSS (KiB, as GNU time gives
it) and CPU (user + system) of each, and whether the two restores of a
round wrote the same rows: every table of the two copies compared, values
within the restore's seconds (its ``now``) read as one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

RUN = "from coursevault.cli.app import run; run()"


def restore(src: str, url: str, dataroot: str, repo: str, snap: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": src}
    started = time.time()
    out = subprocess.run(
        [
            "/usr/bin/time",
            "-v",
            sys.executable,
            "-c",
            RUN,
            "-r",
            repo,
            "restore",
            snap,
            "--db",
            url,
            "--dataroot",
            dataroot,
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    fields = dict(line.strip().split(": ", 1) for line in out.stderr.splitlines() if ": " in line)
    report = json.loads(out.stdout)
    return {
        "rss_kib": int(fields["Maximum resident set size (kbytes)"]),
        "cpu": float(fields["User time (seconds)"]) + float(fields["System time (seconds)"]),
        "rows": sum(report["rows"].values()),
        "report": {k: report[k] for k in ("rows", "ids", "unmapped", "users", "files")},
        "window": (int(started) - 1, int(time.time()) + 1),
    }


def fresh_copy(url: str, work: Path, tag: str) -> str:
    if url.startswith("sqlite:///"):
        copy = work / f"{tag}.db"
        shutil.copy(url.removeprefix("sqlite:///"), copy)
        return f"sqlite:///{copy}"
    base, name = url.rsplit("/", 1)
    new = f"{name}_{tag}"
    with sa.create_engine(base + "/postgres", isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS {new}"))
        c.execute(sa.text(f"CREATE DATABASE {new} TEMPLATE {name}"))
    return f"{base}/{new}"


def drop_copy(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).unlink()
        return
    base, name = url.rsplit("/", 1)
    with sa.create_engine(base + "/postgres", isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def site_rows(url: str, window: tuple[int, int]) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, a value inside the restore's seconds read as NOW."""
    engine = sa.create_engine(url)
    lo, hi = window
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in sorted(sa.inspect(conn).get_table_names()):
            rows = conn.execute(sa.text(f"SELECT * FROM {table}")).fetchall()
            out[table] = sorted(
                (
                    tuple("NOW" if isinstance(v, int) and lo <= v <= hi else v for v in r)
                    for r in rows
                ),
                key=repr,
            )
    engine.dispose()
    return out


def same_rows(a: str, wa: tuple[int, int], b: str, wb: tuple[int, int]) -> bool:
    window = (min(wa[0], wb[0]), max(wa[1], wb[1]))
    return site_rows(a, window) == site_rows(b, window)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument(
        "--site", action="append", required=True, help="LABEL=URL,DATAROOT,REPO,SNAPSHOT"
    )
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sites = []
    for spec in args.site:
        label, rest = spec.split("=", 1)
        url, dataroot, repo, snap = rest.rsplit(",", 3)
        sites.append((label, url, dataroot, repo, snap))
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    same: dict[str, list[bool]] = {}
    loads = []
    with tempfile.TemporaryDirectory(prefix="cv-memory-bench-") as tmp:
        work = Path(tmp)
        for rnd in range(args.rounds):
            for label, url, dataroot, repo, snap in sites:
                copies = {}
                for side, src in (("before", args.before), ("after", args.after)):
                    copy = fresh_copy(url, work, f"{side}{rnd}")
                    runs.setdefault((label, side), []).append(
                        restore(src, copy, dataroot, repo, snap)
                    )
                    copies[side] = copy
                    loads.append(os.getloadavg()[0])
                b, a = runs[(label, "before")][-1], runs[(label, "after")][-1]
                same.setdefault(label, []).append(
                    b["report"] == a["report"]
                    and same_rows(copies["before"], b["window"], copies["after"], a["window"])
                )
                for copy in copies.values():
                    drop_copy(copy)
                print(
                    f"round {rnd + 1} {label}: before {b['rss_kib']} KiB {b['cpu']:.2f} s, "
                    f"after {a['rss_kib']} KiB {a['cpu']:.2f} s, same rows {same[label][-1]}",
                    flush=True,
                )
    print(f"load average {min(loads):.1f}-{max(loads):.1f}")
    for label, *_rest in sites:
        cells = []
        for side in ("before", "after"):
            r = runs[(label, side)]
            rss = statistics.median(x["rss_kib"] for x in r)
            cpu = statistics.median(x["cpu"] for x in r)
            cells.append(f"{side}: {rss:,.0f} KiB ({rss * 1024 / 1e6:.1f} MB), {cpu:.2f} s CPU")
        print(
            f"{label} ({r[-1]['rows']:,} rows): "
            + "; ".join(cells)
            + f"; rows the same in every round: {all(same[label])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
