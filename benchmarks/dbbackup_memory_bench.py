"""``backup --db`` peak RSS and CPU of two versions side by side (issue 21:
"peak RSS flat from S to M").

    .venv/bin/python benchmarks/dbbackup_memory_bench.py --before SRC --after SRC \
        --site S=sqlite:///S/site.db,S/data --site M=sqlite:///M/site.db,M/data \
        [--course 2] [--rounds 3]

Each ``--before``/``--after`` is a ``src`` folder of coursevault (a git
worktree, or ``git archive`` of the commit to measure): its backup runs as
the console script does (``coursevault.cli.app.run``) with that folder first
on ``PYTHONPATH``, under ``/usr/bin/time -v`` (start-up included).  A site
is a demo site (``coursevault demo-site``) or any Moodle database with its
dataroot.  A round backs the course up with each version in turn into a new
repository of its own (the full backup), then again into the same one (the
unchanged night).  Printed: the median peak RSS and CPU (user + system) of
each, and whether the two versions stored the same course: the same ids of
every object in their repositories but the few that hold each run's own
values (``moodle_backup.xml``'s date and backup id, the trees above it, the
snapshot's dictionary), and, the after version's backup stored into the
before version's repository, a diff that changes only moodle_backup.xml.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RUN = "from coursevault.cli.app import run; run()"
RUN_VALUES = 16  # objects a run's own values change (12-14 on demo courses)


def coursevault(src: str, repo: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": src}
    command = [sys.executable, "-c", RUN, "-r", str(repo), "--cache-dir", str(cache), *args]
    return subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=env, check=True
    )


def backup(
    src: str, repo: Path, cache: Path, url: str, dataroot: str, course: int
) -> dict[str, Any]:
    out = coursevault(
        src,
        repo,
        cache,
        "backup",
        "--db",
        url,
        "--dataroot",
        dataroot,
        "--course",
        str(course),
        "--json",
    )
    fields = dict(line.strip().split(": ", 1) for line in out.stderr.splitlines() if ": " in line)
    [report] = json.loads(out.stdout)
    return {
        "rss_kib": int(fields["Maximum resident set size (kbytes)"]),
        "cpu": float(fields["User time (seconds)"]) + float(fields["System time (seconds)"]),
        "new_objects": report["new_objects"],
        "members": report["members"],
    }


def object_ids(cache: Path) -> set[bytes]:
    """Every object id the repository's catalog (in ``cache``) indexes."""
    [catalog] = cache.glob("*/catalog.sqlite")
    with sqlite3.connect(catalog) as db:
        return {row[0] for row in db.execute("SELECT id FROM cv_locations")}


def one_round(
    sides: dict[str, str], work: Path, url: str, dataroot: str, course: int
) -> tuple[dict[tuple[str, str], dict[str, Any]], bool]:
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    ids: dict[str, set[bytes]] = {}
    for side, src in sides.items():
        repo, cache = work / f"{side}-repo", work / f"{side}-cache"
        coursevault(src, repo, cache, "init")
        runs[(side, "full")] = backup(src, repo, cache, url, dataroot, course)
        runs[(side, "night")] = backup(src, repo, cache, url, dataroot, course)
        ids[side] = object_ids(cache)
    # every file chunk and record alike: the objects of the two repositories
    same_objects = len(ids["before"] ^ ids["after"]) <= 4 * RUN_VALUES and all(
        runs[("before", run)]["members"] == runs[("after", run)]["members"]
        for run in ("full", "night")
    )
    return runs, same_objects and same_members(sides, work, url, dataroot, course)


def same_members(sides: dict[str, str], work: Path, url: str, dataroot: str, course: int) -> bool:
    """The after version's backup into the before version's repository: its
    diff with the before version's last snapshot changes only the run's
    values in moodle_backup.xml."""
    repo, cache = work / "before-repo", work / "before-cache"
    backup(sides["after"], repo, cache, url, dataroot, course)
    listed = coursevault(sides["after"], repo, cache, "snapshots", "--json").stdout
    old, new = (s["id"] for s in json.loads(listed)[-2:])
    diff = json.loads(coursevault(sides["after"], repo, cache, "diff", old, new, "--json").stdout)
    return all(m["path"] == "moodle_backup.xml" for m in diff["members"]) and all(
        r["member"] == "moodle_backup.xml" for r in diff["records"]
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--site", action="append", required=True, help="LABEL=URL,DATAROOT")
    ap.add_argument("--course", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sides = {"before": args.before, "after": args.after}
    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    same: dict[str, list[bool]] = {}
    loads = []
    for rnd in range(args.rounds):
        for spec in args.site:
            label, rest = spec.split("=", 1)
            url, dataroot = rest.rsplit(",", 1)
            with tempfile.TemporaryDirectory(prefix="cv-backup-memory-") as tmp:
                got, ok = one_round(sides, Path(tmp), url, dataroot, args.course)
            loads.append(os.getloadavg()[0])
            same.setdefault(label, []).append(ok)
            for (side, run), r in got.items():
                runs.setdefault((label, side, run), []).append(r)
            print(
                f"round {rnd + 1} {label}: "
                + "; ".join(
                    f"{side} {run} {r['rss_kib']} KiB {r['cpu']:.2f} s"
                    for (side, run), r in got.items()
                )
                + f"; same {ok}",
                flush=True,
            )
    print(f"load average {min(loads):.1f}-{max(loads):.1f}")
    for spec in args.site:
        label = spec.split("=", 1)[0]
        for run in ("full", "night"):
            cells = []
            for side in sides:
                r = runs[(label, side, run)]
                rss = statistics.median(x["rss_kib"] for x in r)
                cpu = statistics.median(x["cpu"] for x in r)
                cells.append(f"{side}: {rss * 1024 / 1e6:.1f} MB, {cpu:.2f} s CPU")
            print(f"{label} {run}: " + "; ".join(cells))
        print(f"{label}: the same course stored in every round: {all(same[label])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
