"""A course's unchanged night inside a long-running process (issues 21 and 22).

    eval "$(bash scripts/refsite)"
    .venv/bin/python benchmarks/dbbackup_inrun_bench.py [--course 2 --course 38] [--rounds 7]

Issue 21's nightly figure is 20x Moodle's full backup of the same course
(gen_s: 4.3 s, so 0.215 s; issue 22's rich: 3.0 s, so 0.15 s).  A command of
its own pays the interpreter and the imports (SQLAlchemy and psycopg alone
take about 0.4 s here), so this measures what the night costs once they are
paid, as in a scheduled ``backup --all`` run: in one process, the CLI's own
``main()`` backs each course up once to warm up (imports, the connection
pool, compiled SQL), then ``--rounds`` times more, each round after a backup
of a warm-up course (course 3), so that no course is served from the
previous call's caches of itself.  Reports each course's wall and CPU
seconds (median, min, max), with the floor of its own queries replayed and
files read (dbbackup_bench.floor) and the ratio to Moodle's time.

Reads the reference site's PostgreSQL database (COURSEVAULT_REFSITE_POSTGRES)
and never writes it: a backup only reads.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dbbackup_bench import MOODLE_GEN_S, floor, moodle_seconds
from machine import cpu_model

WARM_UP_COURSE = 3


def _backup(repo: Path, url: str, dataroot: str, course: int) -> tuple[float, float, float]:
    """One ``coursevault backup --course`` through the CLI's main(), in
    this process: (wall, CPU) seconds of the command -- opening the
    repository and its catalog, taking its lock, which a site's ``--all``
    run does once -- and the course's own ``seconds`` from its --json
    (from its read transaction to its snapshot, as ``--all`` reports it)."""
    from coursevault.cli.app import main

    args = ["-r", str(repo), "backup", "--db", url, "--dataroot", dataroot,
            "--course", str(course), "--json"]
    out = io.StringIO()
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(out):
        rc = main(args)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if rc:
        raise SystemExit(f"backup of course {course} exited {rc}")
    [outcome] = json.loads(out.getvalue())
    return wall, cpu, float(outcome["seconds"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--course", type=int, action="append")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    courses = args.course or [2, 38]
    url = os.environ["COURSEVAULT_REFSITE_POSTGRES"]
    dataroot = os.environ["COURSEVAULT_REFSITE_DATAROOT"]
    site_dir = os.environ["COURSEVAULT_REFSITE_DIR"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, commit {commit}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    from coursevault.cli.app import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        with contextlib.redirect_stdout(io.StringIO()):
            failed = cli(["-r", str(repo), "init"])
        if failed:
            raise SystemExit("init failed")
        for course in [WARM_UP_COURSE, *courses]:
            _backup(repo, url, dataroot, course)  # the first night; imports paid
        for course in courses:
            runs = []
            for _ in range(args.rounds):
                _backup(repo, url, dataroot, WARM_UP_COURSE)
                runs.append(_backup(repo, url, dataroot, course))
            walls = sorted(w for w, _c, _s in runs)
            cpu = statistics.median(c for _w, c, _s in runs)
            wall = statistics.median(walls)
            inside = sorted(s for _w, _c, s in runs)
            seconds, queries = floor(url, dataroot, course)
            # gen_s: issue 21's own measurement (courses.tsv says 6.5 s)
            moodle = MOODLE_GEN_S[0] if course == 2 else moodle_seconds(site_dir, course)
            print(f"course {course}: unchanged night in a warm process {wall:.3f} s wall "
                  f"(median of {len(runs)}; {walls[0]:.3f}-{walls[-1]:.3f}), {cpu:.3f} s CPU; "
                  f"floor ({queries} queries replayed, files read) {seconds:.3f} s; "
                  f"Moodle's full backup {moodle} s -> {moodle / wall:.1f}x "
                  f"(20x would be {moodle / 20:.3f} s); the course itself (--json seconds) "
                  f"{statistics.median(inside):.3f} s ({inside[0]:.3f}-{inside[-1]:.3f}) -> "
                  f"{moodle / statistics.median(inside):.1f}x")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
