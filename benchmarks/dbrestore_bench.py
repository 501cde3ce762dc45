"""``restore --db`` figures (issue 23), measured in one run on this machine.

    eval "$(bash scripts/refsite)"
    .venv/bin/python benchmarks/dbrestore_bench.py [--course 2] [--repeat 3] [--nights 30]

Every restore is a ``coursevault restore`` process of its own, timed whole
(start-up included) with its peak RSS from GNU time; the report's own
``seconds`` (the restore inside the process, without start-up and imports)
and the process's CPU seconds (user + system, from the kernel's accounting
of finished children) are given beside it: on this shared 2-core machine
the wall time swings with the other sessions' load, the CPU time far less.

1. gen_s (the reference site's course 2), backed up from a private copy of
   the site's PostgreSQL database (cv_refsite stays untouched) and restored
   into that copy as a new course, --repeat times (median wall, max RSS);
   then the same with ``--dry-run``;
2. demo sites (``coursevault demo-site``), size S and M, on SQLite and on
   PostgreSQL: the demo course backed up, then restored into its own site
   as a new course (S: --repeat times; M: --repeat-m times);
3. point in time: a size-S demo site on SQLite through --nights nights of
   ``demo-site --churn``, backed up after each, then night 1 and the last
   night restored into it, alternately, --repeat times each.

Moodle's own restore of gen_s's .mbz took 15.6 s wall and 85 MB peak RSS on
this kind of machine (issue 23's measurement; Moodle is not installed here).
Databases made here are dropped at the end; files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from dbbackup_bench import psql
from ingest_bench import CV, Bench
from machine import cpu_model

MOODLE_GEN_S = (15.6, 85.0)  # seconds, MB: issue 23
PREFIX = os.environ.get("CV_BENCH_DB", "cv_restore_bench")
NIGHT_ONE = dt.datetime(2026, 10, 1, 22, 0, tzinfo=dt.UTC)


class Restores:
    """Runs and measures restores; keeps every figure for the summary."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.results: dict[str, Any] = {}

    def backup(self, repo: Path, url: str, dataroot: str, course: int) -> str:
        out = self.bench.run(
            [
                CV,
                "-r",
                str(repo),
                "backup",
                "--db",
                url,
                "--dataroot",
                dataroot,
                "--course",
                str(course),
                "--json",
            ]
        )
        [outcome] = json.loads(out)
        return str(outcome["snapshot"])

    def restore(
        self, repo: Path, snapshot: str, url: str, dataroot: str, *extra: str
    ) -> dict[str, Any]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        m = self.bench.measure(
            [
                CV,
                "-r",
                str(repo),
                "restore",
                snapshot,
                "--db",
                url,
                "--dataroot",
                dataroot,
                "--json",
                *extra,
            ]
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU seconds of the restore process (user + system): what the load of
        # this shared machine inflates far less than the wall time
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        report = json.loads(m.stdout)
        return {
            "wall": m.seconds,
            "cpu": cpu,
            "rss": m.peak_rss_mb,
            "inside": report["seconds"],
            "rows": sum(report["rows"].values()),
            "activities": report["activities"],
            "left_out": report["left_out"],
            "users": report.get("users") or {},
            "files": report["files"],
            "unmapped": report["unmapped"],
            "courseid": report["courseid"],
            "load": os.getloadavg()[0],
        }

    def series(self, label: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
        """Median wall and inside seconds, max RSS, over ``runs``."""
        summary = {
            "wall": statistics.median(r["wall"] for r in runs),
            "inside": statistics.median(r["inside"] for r in runs),
            "cpu": statistics.median(r["cpu"] for r in runs),
            "rss": max(r["rss"] for r in runs),
            "n": len(runs),
            "load": [round(r["load"], 2) for r in runs],
            "last": runs[-1],
        }
        self.results[label] = summary
        last = runs[-1]
        self.bench.log(
            f"{label}: {summary['wall']:.2f} s wall ({summary['inside']:.2f} s "
            f"inside, {summary['cpu']:.2f} s CPU), {summary['rss']:.0f} MB, {last['rows']} rows, "
            f"{last['activities']} activities, n={len(runs)}"
        )
        return summary


def server_url(name: str) -> str:
    base = os.environ["COURSEVAULT_REFSITE_POSTGRES"]
    return base.rsplit("/", 1)[0] + "/" + name


def new_database(name: str) -> str:
    psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql("postgres", f"CREATE DATABASE {name}")
    return server_url(name)


def drop_database(name: str) -> None:
    psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def gen_s(r: Restores, work: Path, course: int, repeat: int) -> None:
    """The reference site's course restored into a private copy of the site."""
    name = f"{PREFIX}_ref"
    url = new_database(name)
    subprocess.run(
        f"zstd -dc {os.environ['COURSEVAULT_REFSITE_DIR']}/site.pgsql.zst | psql "
        f"-h 127.0.0.1 -U postgres -q -d {name} >/dev/null",
        shell=True,
        check=True,
    )
    dataroot = work / "ref-dataroot"
    shutil.copytree(os.environ["COURSEVAULT_REFSITE_DATAROOT"], dataroot, symlinks=True)
    repo = work / "ref-repo"
    r.bench.run([CV, "init", str(repo)])
    snap = r.backup(repo, url, str(dataroot), course)
    try:
        runs = [r.restore(repo, snap, url, str(dataroot)) for _ in range(repeat)]
        r.series(f"gen_s (course {course}), PostgreSQL", runs)
        dry = [r.restore(repo, snap, url, str(dataroot), "--dry-run") for _ in range(repeat)]
        r.series(f"gen_s (course {course}), PostgreSQL, --dry-run", dry)
    finally:
        drop_database(name)


def demo(r: Restores, work: Path, kind: str, size: str, repeat: int) -> None:
    """A demo site's course restored into that site as a new course."""
    folder = work / f"demo-{kind}-{size}"
    folder.mkdir()
    name = f"{PREFIX}_{size.lower()}"
    url = f"sqlite:///{folder / 'site.db'}" if kind == "SQLite" else new_database(name)
    dataroot = str(folder / "data")
    try:
        r.bench.run([CV, "demo-site", "--db", url, "--dataroot", dataroot, "--size", size])
        repo = folder / "repo"
        r.bench.run([CV, "init", str(repo)])
        snap = r.backup(repo, url, dataroot, 2)
        runs = [r.restore(repo, snap, url, dataroot) for _ in range(repeat)]
        r.series(f"demo {size}, {kind}", runs)
    finally:
        if kind != "SQLite":
            drop_database(name)
        shutil.rmtree(folder)


def point_in_time(r: Restores, work: Path, nights: int, repeat: int) -> None:
    """Night 1 and the last night of a demo course's history, restored alike."""
    folder = work / "history"
    folder.mkdir()
    url, dataroot, repo = f"sqlite:///{folder / 'site.db'}", str(folder / "data"), folder / "repo"
    r.bench.run([CV, "demo-site", "--db", url, "--dataroot", dataroot, "--size", "S"])
    r.bench.run([CV, "init", str(repo)])
    snaps = []
    for night in range(nights):
        when = (NIGHT_ONE + dt.timedelta(days=night)).strftime("%Y-%m-%dT%H:%M:%SZ")
        r.bench.run(
            [CV, "demo-site", "--db", url, "--dataroot", dataroot, "--churn", "--time", when]
        )
        snaps.append(r.backup(repo, url, dataroot, 2))
    r.bench.log(f"{nights} nights backed up")
    first: list[dict[str, Any]] = []
    last: list[dict[str, Any]] = []
    for _ in range(repeat):  # alternately, so load hits both alike
        first.append(r.restore(repo, snaps[0], url, dataroot))
        last.append(r.restore(repo, snaps[-1], url, dataroot))
    r.series("point in time: night 1", first)
    r.series(f"point in time: night {nights}", last)
    shutil.rmtree(folder)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--course", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--repeat-m", type=int, default=1)
    ap.add_argument("--nights", type=int, default=30)
    ap.add_argument("--sizes", default="S,M", help="demo course sizes: S, M or S,M")
    ap.add_argument(
        "--phases", default="gen_s,demo,history", help="comma-separated: gen_s, demo, history"
    )
    ap.add_argument("--out", type=Path, default=Path("/tmp/dbrestore-bench.json"))
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="cv-restore-bench-") as work_dir:
        work = Path(work_dir)
        r = Restores(Bench(work))
        r.bench.log(f"load average at start: {os.getloadavg()}")
        if "gen_s" in phases:
            gen_s(r, work, args.course, args.repeat)
        if "demo" in phases:
            for size, repeat in (("S", args.repeat), ("M", args.repeat_m)):
                if size not in args.sizes.split(","):
                    continue
                for kind in ("SQLite", "PostgreSQL"):
                    demo(r, work, kind, size, repeat)
        if "history" in phases:
            point_in_time(r, work, args.nights, args.repeat)
        r.results["machine"] = f"{cpu_model()}, {os.cpu_count()} CPUs"
        r.results["commit"] = commit
        r.results["commands"] = [c for c in r.bench.commands if " restore " in c][:2]
    args.out.write_text(json.dumps(r.results, indent=1, default=str))
    summary(r.results)
    return 0


def summary(results: dict[str, Any]) -> None:
    print(f"machine: {results['machine']}, commit {results['commit']}")
    for label, s in results.items():
        if not isinstance(s, dict):
            continue
        ratio = MOODLE_GEN_S[0] / s["wall"]
        print(
            f"{label}: {s['wall']:.2f} s wall (median of {s['n']}; {s['inside']:.2f} s "
            f"inside the process, {s['cpu']:.2f} s CPU), peak RSS {s['rss']:.0f} MB, {s['last']['rows']} rows; "
            f"{ratio:.1f}x faster than Moodle's restore of gen_s ({MOODLE_GEN_S[0]} s, "
            f"{MOODLE_GEN_S[1]:.0f} MB); load {s['load']}"
        )
    print("commands:", *results["commands"], sep="\n  ")


if __name__ == "__main__":
    sys.exit(main())
