"""``backup --db`` figures (issues 21 and 22), measured in one run on this machine.

    eval "$(bash scripts/refsite)"
    .venv/bin/python benchmarks/dbbackup_bench.py [--course 2] [--repeat 3] \
        [--churn forum-page|quiz-attempt|question-version ...]

On a private copy of the reference site's PostgreSQL database (CV_BENCH_DB,
default cv_bench_<pid>: a template copy of cv_refsite, or its dump loaded
again while cv_refsite is busy; dropped at the end):

1. full backup of the course into a new repository: wall seconds and peak RSS
   of the ``coursevault backup`` process (median of --repeat runs);
2. the nightly case with nothing changed: --repeat more backups into that
   repository (new objects, seconds);
3. each --churn night in turn (--repeat nights of it), written as SQL on the
   copy, then a backup (new objects and bytes, seconds): ``forum-page`` a new forum reply and an
   edited page; ``quiz-attempt`` a student's graded attempt at the course's
   quiz with attempts, and ``question-version`` a new version of a question
   that quiz uses -- both as tests/dbbackup/quizchurn.py writes them for
   test_incremental_quiz.py;
4. the floor: the same queries the backup ran, replayed on their own (rows
   fetched, nothing written), plus reading the course's files.

Moodle is not installed here.  Its own backup of each course took
``backup_seconds`` in the reference site's courses.tsv (Moodle's admin CLI
backup on this kind of machine, when the site was made); gen_s also took
4.2-4.4 s wall and 85 MB peak RSS in issue 21's measurement.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from ingest_bench import CV, Bench
from machine import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.dbbackup
from tests.dbbackup.quizchurn import (
    add_question_version,
    add_quiz_attempt,
    quiz_question_entry,
    quiz_with_attempts,
)
from tests.dbbackup.refsite import copy_postgres_site, drop_postgres_database

MOODLE_GEN_S = (4.3, 85.0)  # seconds, MB: issue 21
BENCH_DB = os.environ.get("CV_BENCH_DB", f"cv_bench_{os.getpid()}")
CHURNS = ("forum-page", "quiz-attempt", "question-version", "none")


def psql(db: str, sql: str) -> str:
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qtAc", sql],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def moodle_seconds(site_dir: str, course: int) -> float:
    """How long Moodle's own backup of the course took (courses.tsv)."""
    with open(Path(site_dir) / "courses.tsv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row["courseid"].strip() == str(course):
                return float(row["backup_seconds"])
    raise SystemExit(f"course {course} is not in {site_dir}/courses.tsv")


def churn(kind: str, url: str, course: int) -> str:
    """One night of ``kind`` on the copy, an hour ago; says what it wrote."""
    if kind == "forum-page":
        forum_page_night(course)
        return "a forum reply, an edited page"
    now = int(time.time()) - 3600
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if kind == "quiz-attempt":
                quiz, _cm, student = quiz_with_attempts(conn, course)
                new = add_quiz_attempt(conn, quiz, student, now)
                return (f"attempt {new.attempt_id} of quiz {quiz} by user {student}, graded, "
                        "with its completion and totals")
            entry, _category, teacher = quiz_question_entry(conn, course)
            version = add_question_version(conn, entry, teacher, now)
            return f"version {version.version} of question bank entry {entry}"
    finally:
        engine.dispose()


def forum_page_night(course: int) -> None:
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


class Run(NamedTuple):
    """One ``coursevault backup`` process: wall and CPU seconds (user + system,
    steadier than wall on a shared machine; the database server's own time
    is not in it), peak RSS, and what it reported (its "seconds": the
    backup itself, without start-up)."""

    wall: float
    cpu: float
    rss_mb: float
    outcome: dict[str, Any]


def backup(bench: Bench, repo: Path, url: str, dataroot: str, course: int) -> Run:
    m = bench.measure([CV, "-r", str(repo), "backup", "--db", url, "--dataroot", dataroot,
                       "--course", str(course), "--json"])
    [outcome] = json.loads(m.stdout)
    return Run(m.seconds, m.cpu_seconds or 0.0, m.peak_rss_mb, outcome)


def summary(label: str, runs: list[Run], moodle: float) -> str:
    """Medians of the runs, each run's wall time, and the ratio to Moodle's
    full backup of the course (wall to wall)."""
    wall = statistics.median(r.wall for r in runs)
    cpu = statistics.median(r.cpu for r in runs)
    inside = statistics.median(r.outcome["seconds"] for r in runs)
    return (f"{label}: {wall:.2f} s wall (median of {len(runs)}: "
            f"{', '.join(f'{r.wall:.2f}' for r in runs)}), {cpu:.2f} s CPU, the backup itself "
            f"{inside:.2f} s; peak RSS {max(r.rss_mb for r in runs):.0f} MB; new objects "
            f"{[r.outcome['new_objects'] for r in runs]}, new bytes "
            f"{[r.outcome['new_bytes'] for r in runs]}; "
            f"{runs[-1].outcome.get('files_known', 0)} files taken unread "
            f"-> {moodle / wall:.1f}x faster than Moodle's full backup ({moodle} s)")


def floor(url: str, dataroot: str, course: int) -> tuple[float, int]:
    """Replay the backup's own queries, fetching rows, and read its files:
    seconds, and how many queries."""
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
    return time.perf_counter() - t0, len(queries)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--course", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--churn", action="append", choices=CHURNS,
                    help="a night to measure, in turn (default: forum-page)")
    args = ap.parse_args()
    source = os.environ["COURSEVAULT_REFSITE_POSTGRES"]
    dataroot = os.environ["COURSEVAULT_REFSITE_DATAROOT"]
    site_dir = os.environ["COURSEVAULT_REFSITE_DIR"]
    moodle = moodle_seconds(site_dir, args.course)
    url = copy_postgres_site(source, Path(site_dir), BENCH_DB)
    try:
        with tempfile.TemporaryDirectory() as work_dir:
            work = Path(work_dir)
            bench = Bench(work)
            fulls = []
            for i in range(args.repeat):
                repo = work / f"repo{i}"
                bench.run([CV, "init", str(repo)])
                fulls.append(backup(bench, repo, url, dataroot, args.course))
            repo = work / "repo0"
            nights = [("unchanged night", [backup(bench, repo, url, dataroot, args.course)
                                           for _ in range(args.repeat)])]
            for kind in args.churn or ["forum-page"]:
                if kind == "none":  # a course with nothing of the kinds above
                    continue
                runs, what = [], ""
                for _ in range(args.repeat):
                    what = churn(kind, url, args.course)
                    runs.append(backup(bench, repo, url, dataroot, args.course))
                nights.append((f"{kind} night ({what})", runs))
            base, queries = floor(url, dataroot, args.course)
    finally:
        drop_postgres_database(url)
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"course {args.course} ({fulls[0].outcome['shortname']}, "
          f"{fulls[0].outcome['members']} members, {fulls[0].outcome['new_objects']} objects); "
          f"Moodle's own backup of it took {moodle} s (courses.tsv)")
    print(summary("full backup, new repository", fulls, moodle))
    if args.course == 2:
        seconds = statistics.median(r.wall for r in fulls)
        print(f"  (issue 21 measured Moodle's gen_s backup at {MOODLE_GEN_S[0]} s, "
              f"{MOODLE_GEN_S[1]} MB: {MOODLE_GEN_S[0] / seconds:.1f}x)")
    for label, runs in nights:
        print(summary(label, runs, moodle))
    seconds = statistics.median(r.wall for r in fulls)
    print(f"floor (the same {queries} queries replayed + files read): {base:.2f} s; "
          f"full backup / floor = {seconds / base:.1f}")
    print("commands:", *bench.commands[-3:], sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
