"""What mending a replica that lost a pack costs: ``repair packs`` then
``sync --refill``, against what a user would otherwise run -- a fresh
sync of everything into an empty repository -- in one run on this machine.

    .venv/bin/python benchmarks/refill_bench.py [--courses 8] [--xml-mb 10] [--repeat 3]

The source is sync_bench's N-course repository (benchmarks/gen_course.py,
nights 1-2 of each course, 1-7 of course 1).  It is synced into a hub;
each round copies the hub, deletes its largest pack, and times, each in a
process of its own under ``/usr/bin/time`` (wall, CPU, peak RSS):
``check`` (what finds it), ``repair packs``, ``sync --refill`` and ``check
--read-data`` (clean again); and a fresh ``sync`` of the source into an
empty folder.  Medians over ``--repeat`` rounds.
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

from machine import cpu_model
from sync_bench import CV, ROOT, make_courses, make_source, stored_bytes


def timed(argv: list[str | Path], cache: Path, ok: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """One process: wall and CPU seconds, peak RSS (MB), its exit code, stdout."""
    env = dict(os.environ, COURSEVAULT_CACHE=str(cache))
    cmd = ["/usr/bin/time", "-f", "%e %U %S %M", *CV, *map(str, argv)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode not in ok:
        raise RuntimeError(f"{argv[:3]} failed ({done.returncode}): {done.stderr[-2000:]}")
    wall, user, system, rss_kib = done.stderr.strip().splitlines()[-1].split()
    return {
        "wall": float(wall),
        "cpu": float(user) + float(system),
        "rss_mb": int(rss_kib) * 1024 / 1e6,
        "code": done.returncode,
        "out": done.stdout,
    }


def one_round(src: Path, hub: Path, work: Path, n: int) -> dict[str, Any]:
    replica = work / f"replica-{n}"
    shutil.copytree(hub, replica)
    cache = work / f"cache-{n}"  # the replica's catalog, warm as a hub's would be
    timed(["snapshots", "-r", replica], cache)
    packs = [p for p in (replica / "packs").rglob("*") if p.is_file()]
    lost = max(packs, key=lambda p: p.stat().st_size)
    size = lost.stat().st_size
    lost.unlink()
    row: dict[str, Any] = {"pack_bytes": size}
    row["check"] = timed(["check", "-r", replica], cache, ok=(1,))
    row["repair"] = timed(["repair", "packs", "-r", replica, "--json"], cache)
    row["dropped"] = json.loads(row["repair"]["out"])["objects_dropped"]
    row["refill"] = timed(["sync", src, replica, "--refill", "--json"], cache)
    report = json.loads(row["refill"]["out"])
    row["copied_objects"], row["copied_bytes"] = report["objects"], report["bytes"]
    row["check_after"] = timed(["check", "-r", replica, "--read-data"], cache)
    fresh = work / f"fresh-{n}"
    row["fresh_sync"] = timed(["sync", src, fresh, "--json"], work / f"cache-fresh-{n}")
    shutil.rmtree(replica)
    shutil.rmtree(fresh)
    for step in ("check", "repair", "refill", "check_after", "fresh_sync"):
        row[step].pop("out")
    return row


def median(rows: list[dict[str, Any]], step: str, field: str) -> float:
    return statistics.median(r[step][field] for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--courses", type=int, default=8)
    parser.add_argument("--xml-mb", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="refill-bench-") as tmp:
        work = Path(tmp)
        cache = work / "cache"
        nights = make_courses(work / "archives", args.courses, args.xml_mb)
        make_source(work, nights, cache)
        src, hub = work / "src-N", work / "hub"
        timed(["sync", src, hub], cache)
        rows = [one_round(src, hub, work, n) for n in range(args.repeat)]
        result: dict[str, Any] = {
            "commit": subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                capture_output=True, text=True, check=True,
            ).stdout.strip(),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "load": os.getloadavg()[0],
            "repository_bytes": stored_bytes(hub),
            "rounds": rows,
            "median": {
                step: {f: median(rows, step, f) for f in ("wall", "cpu", "rss_mb")}
                for step in ("check", "repair", "refill", "check_after", "fresh_sync")
            },
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    sys.exit(code)
