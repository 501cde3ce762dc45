"""``backup --db`` figures (issue 21), measured in one run on this machine.

    eval "$(bash scripts/refsite)"
    .venv/bin/python benchmarks/dbbackup_bench.py [--course 2] [--repeat 3]

On a private copy of the reference site's PostgreSQL database (cv_bench,
loaded from the site's dump; cv_refsite stays untouched):

1. full backup of the course into a new repository: wall seconds and peak RSS
   of the ``coursevault backup`` process (median of --repeat runs);
2. the nightly case with nothing changed: a second backup into each of those
   repositories (new objects, median seconds);
3. one night's churn -- a new forum post and an edited page, as SQL on the
   copy -- then a backup into each (new objects and bytes, median seconds);
4. the floor: the same queries the backup ran, replayed on their own (rows
   fetched, nothing written), plus reading the course's files.

Moodle's own backup of gen_s took 4.2-4.4 s wall and 85 MB peak RSS on this
kind of machine (issue 21's measurement; Moodle is not installed here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest_bench import CV, Bench
from machine import cpu_model

MOODLE_GEN_S = (4.3, 85.0)  # seconds, MB: issue 21
BENCH_DB = os.environ.get("CV_BENCH_DB", "cv_bench")


def psql(db: str, sql: str) -> str:
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qtAc", sql],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def fresh_copy(source_url: str, site_dir: str) -> str:
    """The reference site loaded again from its dump into a database of our
    own (a template copy would need nobody else connected to cv_refsite)."""
    psql("postgres", f"DROP DATABASE IF EXISTS {BENCH_DB}")
    psql("postgres", f"CREATE DATABASE {BENCH_DB}")
    subprocess.run(f"zstd -dc {site_dir}/site.pgsql.zst | psql -h 127.0.0.1 -U postgres -q "
                   f"-d {BENCH_DB} >/dev/null", shell=True, check=True)
    return source_url.rsplit("/", 1)[0] + "/" + BENCH_DB


def churn(course: int) -> None:
    """One night: a reply in the course's first forum discussion, an edited page."""
    discussion = psql(BENCH_DB, "SELECT d.id FROM mdl_forum_discussions d WHERE d.course = "
                      f"{course} ORDER BY d.id LIMIT 1")
    if discussion:
        psql(BENCH_DB, f"""
            INSERT INTO mdl_forum_posts (discussion, parent, userid, created, modified, mailed,
                subject, message, messageformat, messagetrust, attachment, totalscore,
                mailnow, privatereplyto, wordcount, charcount)
            SELECT discussion, id, userid, created + 86400, modified + 86400, 0,
                'Re: ' || subject, '<p>A reply written tonight.</p>', messageformat,
                messagetrust, '', 0, 0, 0, 5, 27
            FROM mdl_forum_posts WHERE discussion = {discussion} ORDER BY id LIMIT 1""")
    psql(BENCH_DB, f"""
        UPDATE mdl_page SET content = content || '<p>Edited tonight.</p>',
            timemodified = timemodified + 86400
        WHERE id = (SELECT min(id) FROM mdl_page WHERE course = {course})""")


def backup(bench: Bench, repo: Path, url: str, dataroot: str, course: int) -> tuple[float, float,
                                                                                    dict]:
    m = bench.measure([CV, "-r", str(repo), "backup", "--db", url, "--dataroot", dataroot,
                       "--course", str(course), "--json"])
    [outcome] = json.loads(m.stdout)
    outcome["cpu_seconds"] = m.cpu_seconds
    return m.seconds, m.peak_rss_mb, outcome


def floor(url: str, dataroot: str, course: int) -> float:
    """Replay the backup's own queries, fetching rows, and read its files."""
    from coursevault.definitions.run import course_members, start_run
    from coursevault.moodledb import site
    from coursevault.structure.plan import FileRef

    queries: list = []
    original = site.SiteReader._run

    def recording(self, query):  # type: ignore[no-untyped-def]
        queries.append(query)
        return original(self, query)

    site.SiteReader._run = recording  # type: ignore[method-assign]
    files: list[str] = []
    engine = site.open_engine(url)
    with site.read_transaction(engine, "mdl_") as reader:
        run = start_run(reader, course)
        run.dataroot = dataroot
        for _name, data in course_members(run):
            if isinstance(data, FileRef):
                files.append(data.path)
    site.SiteReader._run = original  # type: ignore[method-assign]
    t0 = time.perf_counter()
    with engine.connect() as conn:
        for query in queries:
            conn.execute(query).fetchall()
    for path in files:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    return time.perf_counter() - t0


def _median_run(runs: list[tuple[float, float, dict]]) -> tuple[float, float, dict]:
    """The median time, the highest peak RSS, the first run's outcome (every
    repository stores the same night: the same objects and bytes) with the
    median CPU seconds."""
    outcome = dict(runs[0][2])
    outcome["cpu_seconds"] = _median_cpu(runs)
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs), outcome


def _median_cpu(runs: list[tuple[float, float, dict]]) -> float:
    cpu = [r[2]["cpu_seconds"] for r in runs if r[2].get("cpu_seconds") is not None]
    return statistics.median(cpu) if cpu else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--course", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    source = os.environ["COURSEVAULT_REFSITE_POSTGRES"]
    dataroot = os.environ["COURSEVAULT_REFSITE_DATAROOT"]
    url = fresh_copy(source, os.environ["COURSEVAULT_REFSITE_DIR"])
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        bench = Bench(work)
        fulls = []
        for i in range(args.repeat):
            repo = work / f"repo{i}"
            bench.run([CV, "init", str(repo)])
            fulls.append(backup(bench, repo, url, dataroot, args.course))
        seconds = statistics.median(f[0] for f in fulls)
        rss = max(f[1] for f in fulls)
        # each night in every repository: a median of --repeat runs too, as
        # one run of a second on a shared machine can take twice as long
        repos = [work / f"repo{i}" for i in range(args.repeat)]
        again = _median_run([backup(bench, r, url, dataroot, args.course) for r in repos])
        churn(args.course)
        night = _median_run([backup(bench, r, url, dataroot, args.course) for r in repos])
        base = floor(url, dataroot, args.course)
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; load average (1, 5, 15 min) "
          f"before {'/'.join(f'{x:.2f}' for x in load_before)}, "
          f"after {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"course {args.course}: full backup {seconds:.2f} s (median of {args.repeat}"
          f"; CPU {_median_cpu(fulls):.2f} s), "
          f"peak RSS {rss:.0f} MB; Moodle's own: {MOODLE_GEN_S[0]} s, {MOODLE_GEN_S[1]} MB "
          f"-> {MOODLE_GEN_S[0] / seconds:.1f}x faster")
    for label, (s, r, o) in (("unchanged night", again), ("after one churn night", night)):
        print(f"{label}: {s:.2f} s (median of {args.repeat}; CPU {o['cpu_seconds']:.2f} s), "
              f"peak RSS {r:.0f} MB, {o['new_objects']} new objects, "
              f"{o['new_bytes']} new bytes, {o.get('files_known', 0)} files taken unread "
              f"-> {MOODLE_GEN_S[0] / s:.1f}x faster than Moodle's full backup")
    print(f"floor (the same queries replayed + files read): {base:.2f} s; "
          f"full backup / floor = {seconds / base:.1f}")
    print("commands:", *bench.commands[-3:], sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
