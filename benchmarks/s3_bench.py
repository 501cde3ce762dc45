"""What an S3 repository costs against a folder: requests of a one-course
command on a warm cache at 1 and N courses, and ingest/export throughput of
a generated course to a folder and to S3 on loopback.

``.venv/bin/python benchmarks/s3_bench.py [--xml-mb 30]`` starts ``rclone
serve s3`` on 127.0.0.1 (the tests' server, tests/s3server.py) over a
temporary folder, and prints a Markdown report (docs/benchmarks.md).

Requests are counted by ``CountingBackend`` between the S3 backend and the
wrappers (retries, limit, disk cache): calls that reached the service; a
listing counts once per call (one request per 1,000 keys).  Each command
opens the repository anew, as the CLI does, with the same cache folder
(warm: the command ran once before) or a new one (cold: another machine).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from calibrate import measure  # noqa: E402
from gen_course import write_base  # noqa: E402
from machine import cpu_model  # noqa: E402
from s3server import FaultProxy, S3Server  # noqa: E402

from coursevault import api  # noqa: E402
from coursevault.store.backend import Backend, LocalBackend  # noqa: E402
from coursevault.store.diskcache import disk_cache  # noqa: E402
from coursevault.store.repository import Repository  # noqa: E402
from coursevault.store.s3backend import S3Backend, S3Location  # noqa: E402
from coursevault.store.wrappers import (  # noqa: E402
    ConcurrencyLimiter,
    CountingBackend,
    RetryingBackend,
)

CORPUS = sorted((ROOT.parent / "shared" / "corpus" / "moodle").glob("*.mbz"))
CONNECTIONS = 8


class Target:
    """A repository location and how to open it counted (S3) or plainly (folder)."""

    def __init__(self, location: str, endpoint: str | None, uploads: int = 1) -> None:
        self.location = location
        self.endpoint = endpoint
        self.uploads = uploads  # packs in flight per writer (api: S3_PACK_UPLOADS)
        self.counted: CountingBackend | None = None

    def open(self, cache: Path) -> Repository:
        if self.endpoint is None:
            return Repository.open(LocalBackend(self.location), cache_dir=cache)
        s3 = S3Backend(
            S3Location.parse(self.location), endpoint_url=self.endpoint, connections=CONNECTIONS
        )
        self.counted = CountingBackend(s3)
        stack: Backend = RetryingBackend(ConcurrencyLimiter(self.counted, CONNECTIONS))
        repo = Repository.open(stack, cache_dir=cache, wrap=disk_cache)
        repo.pack_uploads = self.uploads
        return repo

    def init(self, pack_mib: int = 16) -> None:
        remote = api.RemoteOptions(self.endpoint) if self.endpoint else None
        api.init_repository(self.location, remote, pack_size=pack_mib * 1024 * 1024)


def run(
    target: Target, cache: Path, action: str, *args: str, courses: list[str] | None = None
) -> tuple[float, Counter[str]]:
    """One command, as the CLI runs it (open, act, close): seconds and the
    calls that reached the service.  ``ingest`` appends the courses to ``courses``."""
    started = time.perf_counter()
    repo = target.open(cache)
    try:
        if action == "ingest":
            for path in args:
                result = api.ingest(repo, path)
                if courses is not None:
                    courses.append(result.course)
        elif action == "log":
            list(api.log(repo, args[0]))
        elif action == "export":
            api.export(repo, f"{args[0]}@latest", args[1])
    finally:
        repo.close()
    calls = target.counted.calls.copy() if target.counted is not None else Counter[str]()
    return time.perf_counter() - started, calls


def requests_report(target: Target, work: Path) -> list[str]:
    """Warm-cache calls of one course's log and export, at 1 course and at N."""
    target.init()
    cache = work / "cache-requests"
    first = str(next(p for p in CORPUS if "moodle2.3-and-above" in p.name))
    ingested: list[str] = []
    run(target, cache, "ingest", first, courses=ingested)
    course = ingested[0]
    out = str(work / "one.mbz")
    lines = [
        "| courses in the repository | command | calls (cold cache) | calls (warm cache) | warm calls by kind |",
        "|---|---|---|---|---|",
    ]

    def measure_at(courses: int) -> None:
        for action, args in (("log", (course,)), ("export", (course, out))):
            cold = work / f"cache-cold-{courses}-{action}"
            _s, cold_calls = run(target, cold, action, *args)
            run(target, cache, action, *args)  # warm it
            _s, warm_calls = run(target, cache, action, *args)
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(warm_calls.items()))
            lines.append(
                f"| {courses} | `{action}` | {sum(cold_calls.values())} | "
                f"{sum(warm_calls.values())} | {kinds} |"
            )

    measure_at(1)
    others = [str(p) for p in CORPUS if str(p) != first]
    run(target, cache, "ingest", *others, courses=ingested)
    measure_at(len(set(ingested)))
    return lines


def throughput_report(
    targets: dict[str, Target], course: Path, work: Path, pack_mib: int, repeat: int
) -> list[str]:
    """Best of ``repeat`` rounds, the targets interleaved in each round (a
    shared machine's load moves: interleaving spreads it over all of them);
    each round a fresh repository."""
    size = course.stat().st_size
    lines = [
        f"Course: generated, {size / 1e6:.1f} MB .mbz; packs of {pack_mib} MiB; "
        f"best of {repeat} interleaved rounds.",
        "",
        "| repository | ingest s | ingest MB/s | export s (warm cache) | export s (cold cache) | export MB/s (cold) | calls ingest | calls export cold |",
        "|---|---|---|---|---|---|---|---|",
    ]
    best: dict[str, list[float]] = {}
    calls: dict[str, tuple[int, int]] = {}
    for r in range(repeat):
        for n, (name, base) in enumerate(targets.items()):
            target = Target(f"{base.location}-{r}", base.endpoint, base.uploads)
            target.init(pack_mib)
            cache = work / f"cache-tp-{target.location.replace('/', '_')}"
            ingested: list[str] = []
            ingest_s, ingest_calls = run(target, cache, "ingest", str(course), courses=ingested)
            out = str(work / f"tp-{n}.mbz")
            run(target, cache, "export", ingested[0], out)  # warms the cache
            warm_s, _ = run(target, cache, "export", ingested[0], out)
            cold_s, cold_calls = run(
                target,
                work / f"cache-cold-{target.location.replace('/', '_')}",
                "export",
                ingested[0],
                out,
            )
            times = [ingest_s, warm_s, cold_s]
            best[name] = [min(a, b) for a, b in zip(best.get(name, times), times, strict=True)]
            calls[name] = (sum(ingest_calls.values()), sum(cold_calls.values()))
    for name, (ingest_s, warm_s, cold_s) in best.items():
        lines.append(
            f"| {name} | {ingest_s:.2f} | {size / 1e6 / ingest_s:.1f} | {warm_s:.2f} | "
            f"{cold_s:.2f} | {size / 1e6 / cold_s:.1f} | "
            f"{calls[name][0] or '-'} | {calls[name][1] or '-'} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--xml-mb", type=float, default=30.0, help="generated course's XML size")
    parser.add_argument("--pack-size", type=int, default=16, help="MiB, as init --pack-size")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of the throughput runs")
    parser.add_argument("--latency", type=float, default=0.02, help="simulated link: s a request")
    parser.add_argument("--bandwidth", type=float, default=10, help="simulated link: MB/s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="s3bench-") as tmp:
        work = Path(tmp)
        server = S3Server(work / "server")
        try:
            os.environ.update(server.env())
            client = server.client()
            for bucket in ("requests", "throughput", "throughput1"):
                client.create_bucket(Bucket=bucket)
            commit = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
            ).stdout.strip()
            print(f"commit {commit}; {cpu_model()}, {os.cpu_count()} CPUs; {measure()}")
            print(f"load average {os.getloadavg()[0]:.1f}\n")
            print("### Requests of one course's commands\n")
            s3 = Target("s3://requests/repo", server.endpoint)
            print("\n".join(requests_report(s3, work)))
            course_dir = work / "course"
            write_base(course_dir, args.xml_mb, seed=7)
            print("\n### Throughput, folder against S3\n")
            targets = {
                "folder": Target(str(work / "folder-repo"), None),
                "S3, one pack upload at a time": Target("s3://throughput1/repo", server.endpoint),
                f"S3, {api.S3_PACK_UPLOADS} pack uploads in flight": Target(
                    "s3://throughput/repo", server.endpoint, api.S3_PACK_UPLOADS
                ),
            }
            report = throughput_report(
                targets, course_dir / "night-01.mbz", work, args.pack_size, args.repeat
            )
            print("\n".join(report))
            link = FaultProxy(server.endpoint, latency=args.latency, bandwidth=args.bandwidth * 1e6)
            try:
                for bucket in ("link", "link1"):
                    client.create_bucket(Bucket=bucket)
                print(
                    f"\n### Through a simulated link: {args.latency * 1000:.0f} ms a request, "
                    f"{args.bandwidth:.0f} MB/s a connection\n"
                )
                targets = {
                    "S3, one pack upload at a time": Target("s3://link1/repo", link.endpoint),
                    f"S3, {api.S3_PACK_UPLOADS} pack uploads in flight": Target(
                        "s3://link/repo", link.endpoint, api.S3_PACK_UPLOADS
                    ),
                }
                report = throughput_report(
                    targets, course_dir / "night-01.mbz", work, args.pack_size, args.repeat
                )
                print("\n".join(report))
            finally:
                link.stop()
            print(f"\nload average after {os.getloadavg()[0]:.1f}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
