"""A scheduled site night: ``backup --all`` of the reference site (issue 21's nightly case).

    eval "$(bash scripts/refsite)"
    .venv/bin/python benchmarks/dbbackup_site_bench.py [--repeat 3] [--jobs 1 --jobs 2]

One ``coursevault backup`` process per course pays the interpreter, the
imports (SQLAlchemy, psycopg, lxml...) and the repository's opening every
time: some 0.4 s before the first row, which alone is twice issue 21's
nightly budget for gen_s (20x Moodle's 4.3 s = 0.215 s).  A scheduled run
backs up a site's courses in one process (``--all``) and pays that once.
This measures what such a night costs, on a private copy of the reference
site's PostgreSQL database (CV_BENCH_DB, default cv_bench_site_<pid>;
dropped at the end), for each --jobs value:

1. the first night: every course of the site into a new repository;
2. --repeat nights with nothing changed;
3. --repeat nights with a forum reply and an edited page in gen_s
   (dbbackup_bench.py's forum-page night).

Each night: the whole command's wall and CPU seconds (user + system of the
process and its workers; not PostgreSQL's), its peak RSS (the largest
process), courses per minute, and the time each course took inside the run
(``seconds`` in the --json output: from its read transaction to its
snapshot) for gen_s (2) and rich (38).  Moodle's side is
``backup_seconds`` of courses.tsv: Moodle 4.5's admin CLI backup of each
course, on this kind of machine, when the site was made -- one PHP process
per course, its bootstrap included (Moodle is not installed here).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import dbbackup_bench
from ingest_bench import CV, Bench, Measured
from machine import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.dbbackup
from tests.dbbackup.refsite import copy_postgres_site, drop_postgres_database

SITE_DB = os.environ.get("CV_BENCH_DB", f"cv_bench_site_{os.getpid()}")
WATCHED = {2: "gen_s", 38: "rich"}


def moodle_times(site_dir: str) -> dict[int, float]:
    """Each course's Moodle backup time (courses.tsv), by course id."""
    with open(Path(site_dir) / "courses.tsv", newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return {
            int(r["courseid"]): float(r["backup_seconds"])
            for r in rows
            if r["courseid"].strip() and r["backup_seconds"].strip()
        }


def night(bench: Bench, repo: Path, url: str, dataroot: str, jobs: int) -> tuple[Measured, list]:
    m = bench.measure(
        [
            CV,
            "-r",
            str(repo),
            "backup",
            "--db",
            url,
            "--dataroot",
            dataroot,
            "--all",
            "--jobs",
            str(jobs),
            "--json",
        ]
    )
    outcomes = json.loads(m.stdout)
    failed = [o["course_id"] for o in outcomes if o["outcome"] != "stored"]
    if failed:
        raise SystemExit(f"courses not stored: {failed}")
    return m, outcomes


def report(label: str, runs: list[tuple[Measured, list]], moodle: dict[int, float]) -> str:
    walls = [m.seconds for m, _ in runs]
    wall = statistics.median(walls)
    cpu = statistics.median(m.cpu_seconds or 0.0 for m, _ in runs)
    courses = len(runs[0][1])
    total_moodle = sum(moodle[o["course_id"]] for o in runs[0][1])
    inside = {
        c: statistics.median(o["seconds"] for _, outs in runs for o in outs if o["course_id"] == c)
        for c in WATCHED
    }
    watched = ", ".join(
        f"{name} {inside[c]:.3f} s ({moodle[c] / inside[c]:.0f}x its {moodle[c]} s; "
        f"{4.3 / inside[c]:.0f}x issue 21's 4.3 s)"
        if c == 2
        else f"{name} {inside[c]:.3f} s ({moodle[c] / inside[c]:.0f}x its {moodle[c]} s)"
        for c, name in WATCHED.items()
    )
    new = [sum(o["new_objects"] for o in outs) for _, outs in runs]
    return (
        f"{label}: {wall:.2f} s wall (median of {len(runs)}: "
        f"{', '.join(f'{w:.2f}' for w in walls)}), {cpu:.2f} s CPU, peak RSS "
        f"{max(m.peak_rss_mb for m, _ in runs):.0f} MB; {courses} courses, "
        f"{60 * courses / wall:.0f} a minute, {wall / courses:.3f} s a course; "
        f"Moodle's {courses} backups {total_moodle:.1f} s -> {total_moodle / wall:.1f}x; "
        f"inside the run: {watched}; new objects {new}"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, action="append", help="default: 1 and 2")
    args = ap.parse_args()
    source = os.environ["COURSEVAULT_REFSITE_POSTGRES"]
    dataroot = os.environ["COURSEVAULT_REFSITE_DATAROOT"]
    site_dir = os.environ["COURSEVAULT_REFSITE_DIR"]
    moodle = moodle_times(site_dir)
    dbbackup_bench.BENCH_DB = SITE_DB  # the copy forum_page_night writes into
    url = copy_postgres_site(source, Path(site_dir), SITE_DB)
    lines = []
    try:
        with tempfile.TemporaryDirectory() as work_dir:
            work = Path(work_dir)
            bench = Bench(work)
            for jobs in args.jobs or [1, 2]:
                repo = work / f"repo-jobs{jobs}"
                bench.run([CV, "init", str(repo)])
                first = night(bench, repo, url, dataroot, jobs)
                quiet = [night(bench, repo, url, dataroot, jobs) for _ in range(args.repeat)]
                busy = []
                for _ in range(args.repeat):
                    dbbackup_bench.forum_page_night(2)
                    busy.append(night(bench, repo, url, dataroot, jobs))
                lines += [
                    report(f"--jobs {jobs}, first night", [first], moodle),
                    report(f"--jobs {jobs}, nothing changed", quiet, moodle),
                    report(
                        f"--jobs {jobs}, a forum reply and an edited page in gen_s", busy, moodle
                    ),
                ]
    finally:
        drop_postgres_database(url)
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(*lines, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
