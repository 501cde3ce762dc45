"""A whole site in one repository: what one-course commands, ``check``,
``forget`` and ``prune`` cost as the repository grows (issue 26).

Builds, in one work folder, a repository of N courses x nights, growing:

* real: course *i* (key ``c000000``, ...) is corpus archive *i mod k* of
  ``ARCHIVES`` (``shared/corpus/moodle/*.mbz``: four small ones and one of
  0.7 MB) turned into ``--nights`` nights by ``benchmarks/gen_course.py
  nights --from`` with seed *i* (each night adds forum posts, log records,
  grades of its own), its nights ingested in one process
  (``ingest_archive``); sizes ``--sizes`` (default 10, 40, 160 courses);
* synthetic (``--copies 10,100``): then every real course's snapshot
  records copied under new course keys up to that multiple of the largest
  real size (records only -- roots and objects are shared), written as
  plain files and named by a journal checkpoint, as a prune writes.

At every size, each command runs as its own process (the CLI) with a warm
catalog (``log`` run once before), measured by GNU ``time``: wall seconds,
CPU seconds (user + system) and peak RSS:

* ``log``, ``diff --stat`` (last two nights) and ``export`` of one course;
* ``snapshots --json``, ``check`` (and ``--read-data``), ``forget --all --keep-last 9 --dry-run``
  and ``prune --dry-run`` -- everything;
* then, with this checkout's code only, on a copy of the repository and its
  catalog: ``forget --all --keep-last 9`` and ``prune`` for real (prune
  merges the small packs), and the file counts after;
* ``--restic``: at the largest real size, restic 0.14 over the same
  archives, one snapshot a night of every course: ``restic check`` (and
  ``--read-data``) and ``restic forget --group-by host --keep-last 9 --prune``.

``--before SRC`` runs the measured commands with another checkout's ``src``
first on ``PYTHONPATH`` (e.g. ``git archive`` of main's), on the same
repository, with its own catalog folder.  Prints one row per size x code x
command, and the growth exponent of each (the slope of log(time) against
log(snapshots) between the smallest and largest size).

    .venv/bin/python benchmarks/scale_bench.py --sizes 160 --copies 10,100 --restic \
        --before /tmp/before/src --work W --json W/rows.json       # ~40 min
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from gen_course import write_nights  # noqa: E402
from machine import cpu_model  # noqa: E402

from coursevault.snapshot.ingest import ingest_archive  # noqa: E402
from coursevault.store.backend import LocalBackend  # noqa: E402
from coursevault.store.catalog_sync import checkpoint_from_listing  # noqa: E402
from coursevault.store.ids import ObjectType, object_id  # noqa: E402
from coursevault.store.repository import Repository  # noqa: E402
from coursevault.store.series import encode_record  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "moodle"
ARCHIVES = [
    "question_type_coderunner_tests_fixtures_loadtesting_pseudocourse_backup",
    "admin_tool_uploadcourse_tests_fixtures_backup",
    "mod_quiz_tests_fixtures_pre-40-shared-random-question",
    "mod_studentquiz_tests_fixtures_backup-moodle2-course-with-studentquiz-m400",
    "mod_simplecertificate_tests_other_backup-test-course-for-moodle3.1-and-above-fixed",
]
COMMANDS = {
    "log": ["log", "c000000"],
    "diff": ["diff", "c000000@~1", "c000000@latest", "--stat"],
    "export": ["export", "c000000@latest", "-o", "{out}"],
    "snapshots --json": ["snapshots", "--json"],
    "check": ["check"],
    "check --read-data": ["check", "--read-data"],
    "forget --all --dry-run": ["forget", "--all", "--keep-last", "9", "--dry-run"],
    "prune --dry-run": ["prune", "--dry-run"],
}
# run once, after code only, on a copy of the repository (they change it)
CHANGING = {
    "forget --all": ["forget", "--all", "--keep-last", "9"],
    "prune": ["prune"],
}


def course_key(i: int) -> str:
    return f"c{i:06d}"


def nights_of(work: Path, archives: list[str], nights: int, i: int) -> list[Path]:
    """Course ``i``'s nights: archive ``i mod k``, nightly changes seeded by
    ``i`` (so every course adds its own records every night, as a site's do)."""
    folder = work / "nights" / f"{i % len(archives)}-{i}"
    if not folder.exists():
        write_nights(folder, nights, 0, i, CORPUS / f"{archives[i % len(archives)]}.mbz")
    return sorted(Path(p) for p in glob.glob(str(folder / "night-*.mbz")))


def ingest_courses(
    repo: Repository, work: Path, archives: list[str], nights: int, start: int, stop: int
) -> None:
    for i in range(start, stop):
        for n, path in enumerate(nights_of(work, archives, nights, i)):
            when = f"2026-11-{n + 1:02d}T02:00:00Z"
            ingest_archive(repo, str(path), course=course_key(i), when=when)


def copy_records(repo: Repository, repo_dir: Path, upto: int, courses: int, have: int) -> int:
    """Every real course's snapshot records again under new course keys, from
    ``have`` courses up to ``upto``.  Written as plain files (synthetic: no
    fsync, which took 20 minutes for 160,000), then a journal checkpoint of
    the listing, as the prune that follows a site's night writes."""
    by_course: dict[str, list[dict[str, object]]] = {}
    for row in repo.snapshots():
        if int(row.series[1:]) < courses:  # the real courses only
            by_course.setdefault(row.series, []).append(row.record)
    made = 0
    for c in range(have, upto):
        key = course_key(c)
        for record in by_course[course_key(c % courses)]:
            data = encode_record({**record, "course": key, "parents": []})
            snap_id = object_id(ObjectType.SNAPSHOT, data).hex()
            path = repo_dir / repo.record_key(snap_id)
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            made += 1
    checkpoint_from_listing(repo)
    return made


def run_measured(
    argv: list[str], env: dict[str, str], program: list[str] | None = None
) -> tuple[float, float, float, int]:
    """(wall s, cpu s, peak RSS MB, exit code) of one CLI process, by GNU time:
    a child forked from this (large) process would report this one's peak RSS
    as its own (Linux keeps the high-water mark across fork and exec)."""
    code = "from coursevault.cli.app import run; run()"
    program = program or [sys.executable, "-c", code]
    with tempfile.NamedTemporaryFile("r") as report:
        proc = subprocess.run(
            ["/usr/bin/time", "-o", report.name, "-f", "%e %U %S %M", *program, *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        last = report.read().strip().splitlines()[-1]
    wall, user, system, rss_kb = (float(x) for x in last.split())
    return wall, user + system, rss_kb / 1024, proc.returncode


def measure(
    repo_dir: Path,
    cache: Path,
    src: Path | None,
    out: Path,
    skip: set[str],
    commands: dict[str, list[str]] = COMMANDS,
) -> dict[str, tuple[float, float, float, int]]:
    env = dict(os.environ, COURSEVAULT_REPO=str(repo_dir), COURSEVAULT_CACHE=str(cache))
    if src is not None:
        env["PYTHONPATH"] = str(src)
    results = {}
    run_measured(COMMANDS["log"], env)  # warms the catalog (and the page cache)
    for name, argv in commands.items():
        if name not in skip:
            results[name] = run_measured([a.format(out=out) for a in argv], env)
    return results


def changing(
    work: Path, repo_dir: Path, cache: Path
) -> tuple[dict[str, tuple[float, float, float, int]], dict[str, int]]:
    """forget --all then prune, on copies of the repository and its catalog;
    the file counts after."""
    copy, copy_cache = work / "changed", work / "changed-cache"
    for folder in (copy, copy_cache):
        shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(repo_dir, copy)
    shutil.copytree(cache, copy_cache)
    results = measure(copy, copy_cache, None, work / "out.mbz", set(), CHANGING)
    counts = file_counts(copy)
    shutil.rmtree(copy, ignore_errors=True)
    shutil.rmtree(copy_cache, ignore_errors=True)
    return results, counts


def restic_side(work: Path, nights: list[list[Path]]) -> dict[str, tuple[float, float, float, int]]:
    """restic over the same archives: one snapshot a night of every course
    (``nights[n]``: night n's archives), then ``restic check`` and
    ``restic forget --group-by host --keep-last 9 --prune`` (each night's
    paths differ: grouped by paths, every snapshot would be the last of its
    group and nothing would go)."""
    repo = work / "restic"
    shutil.rmtree(repo, ignore_errors=True)
    env = dict(os.environ, RESTIC_REPOSITORY=str(repo), RESTIC_PASSWORD="bench",
               RESTIC_CACHE_DIR=str(work / "restic-cache"))  # fmt: skip
    subprocess.run(["restic", "init", "-q"], env=env, check=True)
    for n, paths in enumerate(nights):
        subprocess.run(
            ["restic", "backup", "-q", "--time", f"2026-11-{n + 1:02d} 02:00:00", *map(str, paths)],
            env=env,
            check=True,
        )
    return {
        "restic check": run_measured(["check"], env, program=["restic"]),
        "restic check --read-data": run_measured(["check", "--read-data"], env, program=["restic"]),
        "restic forget --prune": run_measured(
            ["forget", "--group-by", "host", "--keep-last", "9", "--prune"], env, program=["restic"]
        ),
    }


def file_counts(repo_dir: Path) -> dict[str, int]:
    return {
        d: sum(len(f) for _, _, f in os.walk(repo_dir / d))
        for d in ("packs", "index", "snapshots", "journal")
    }


def growth(points: list[tuple[int, float]]) -> float:
    """Slope of log(value) against log(size), first to last point."""
    (n0, v0), (n1, v1) = points[0], points[-1]
    if n0 == n1 or v0 <= 0 or v1 <= 0:
        return float("nan")
    return math.log(v1 / v0) / math.log(n1 / n0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,40,160", help="real course counts")
    parser.add_argument("--nights", type=int, default=10)
    parser.add_argument("--archives", type=int, default=len(ARCHIVES))
    parser.add_argument(
        "--copies", default="", help="synthetic: multiples of the largest real size, e.g. 10,100"
    )
    parser.add_argument("--before", type=Path, help="another checkout's src to compare")
    parser.add_argument(
        "--before-max",
        type=int,
        default=16_000,
        help="courses beyond which --before is not run",
    )
    parser.add_argument("--restic", action="store_true", help="restic on the real archives too")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if args.restic and shutil.which("restic") is None:
        # Checked before the repositories are built, not when restic is
        # first run an hour later (a FileNotFoundError traceback).
        parser.error("--restic: no restic on PATH (apt-get install restic)")
    work = args.work or Path(tempfile.mkdtemp(prefix="scale-bench-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    copies = [int(c) for c in args.copies.split(",") if c]
    repo_dir = work / "repo"
    for folder in ("repo", "cache", "cache-before", "build-cache"):
        shutil.rmtree(work / folder, ignore_errors=True)
    Repository.init(LocalBackend(repo_dir))
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"# scale_bench  commit {rev}  {cpu_model()}  {os.cpu_count()} CPUs  "
        f"nights {args.nights}  archives {args.archives}  load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows: list[dict[str, object]] = []
    done = 0
    stages = [(n, n) for n in sizes] + [(sizes[-1], sizes[-1] * c) for c in copies]
    archives = ARCHIVES[: args.archives]
    for real, total in stages:
        t = time.perf_counter()
        with Repository.open(LocalBackend(repo_dir), cache_dir=work / "build-cache") as repo:
            if total == real:
                ingest_courses(repo, work, archives, args.nights, done, real)
            else:
                copy_records(repo, repo_dir, total, real, done)
                repo.sync_catalog()  # reads the checkpoint the copies wrote
            done = total
            snaps = len(repo.catalog.snapshot_ids())
        built = time.perf_counter() - t
        counts = file_counts(repo_dir)
        print(f"\n## {total} courses, {snaps} snapshots (built in {built:.0f} s)  files {counts}")
        codes: list[tuple[str, Path | None, Path]] = [("after", None, work / "cache")]
        if args.before is not None and total <= args.before_max:
            codes.insert(0, ("before", args.before, work / "cache-before"))
        for label, src, cache in codes:
            results = measure(repo_dir, cache, src, work / "out.mbz", set())
            if label == "after":
                changed, after_counts = changing(work, repo_dir, cache)
                results.update(changed)
                print(f"   files after forget + prune: {after_counts}")
            if label == "after" and args.restic and total == sizes[-1]:
                by_night = [
                    [nights_of(work, archives, args.nights, i)[n] for i in range(real)]
                    for n in range(args.nights)
                ]
                results.update(restic_side(work, by_night))
            for name, (wall, cpu, rss, rc) in results.items():
                print(
                    f"{label:8} {name:24} {wall:7.2f} s wall {cpu:7.2f} s cpu "
                    f"{rss:7.1f} MB" + ("" if rc in (0, 1) else f"  (exit {rc})"),
                    flush=True,
                )
                rows.append(
                    {
                        "code": label,
                        "courses": total,
                        "snapshots": snaps,
                        "command": name,
                        "wall": wall,
                        "cpu": cpu,
                        "rss_mb": rss,
                        "exit": rc,
                        "files": counts,
                        "load": os.getloadavg()[0],
                    }
                )
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))
    print("\n## growth exponent (cpu, first to last size measured): time ~ snapshots^k")
    names = [*COMMANDS, *CHANGING]
    for label in sorted({str(r["code"]) for r in rows}):
        for name in names:
            mine = [r for r in rows if r["code"] == label and r["command"] == name]
            pts = [(int(r["snapshots"]), float(r["cpu"])) for r in mine]  # type: ignore[call-overload]
            mem = [(int(r["snapshots"]), float(r["rss_mb"])) for r in mine]  # type: ignore[call-overload]
            if len(pts) >= 2:
                print(f"{label:8} {name:24} cpu k={growth(pts):.2f}  rss k={growth(mem):.2f}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
