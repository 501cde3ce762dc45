"""Encrypted against plain repositories: ingest and export throughput (issue 25).

The target: an encrypted repository's ingest and export within 10 % of a
plain one's on the same machine.  Both run in turn, in one process each
round (alternating which goes first, so neither gets the warmer cache
every time), over the same inputs: the 29 corpus archives and the
reference site's gen_s (9.5 MB, its files mostly incompressible).  Each
command's time is the median of the rounds; the passphrase's key
derivation (Argon2id, 64 MiB, once per command) is outside the timings
and reported apart: a constant per command, not a rate.

    .venv/bin/python benchmarks/encryption_bench.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model

from coursevault import api
from coursevault.snapshot.ingest import IngestResult
from coursevault.store.keys import KDF, _derive

HERE = Path(__file__).resolve().parents[1]
CORPUS = sorted((HERE.parent / "shared" / "corpus" / "moodle").glob("*.mbz"))
GEN_S = HERE.parent / "shared" / "moodle-site" / "backups" / "c002-gen_s.mbz"


def one_round(work: Path, encrypted: bool, inputs: list[Path]) -> dict[str, float]:
    """Ingest every input, then export every snapshot, through one open
    repository (the key derivation is outside the timings)."""
    location = str(work / ("sealed" if encrypted else "plain"))
    shutil.rmtree(location, ignore_errors=True)
    shutil.rmtree(work / "cache", ignore_errors=True)
    api.init_repository(location, password=b"bench" if encrypted else None)
    with api.open_repository(location, cache_dir=str(work / "cache"), password=b"bench") as repo:
        start = time.perf_counter()
        snaps = [r.snapshot for _p, r in api.ingest_archives(repo, list(map(str, inputs)))
                 if isinstance(r, IngestResult)]
        ingest = time.perf_counter() - start
        start = time.perf_counter()
        for snap in snaps:
            api.export(repo, snap, str(work / "out.mbz"))
        export = time.perf_counter() - start
    return {"ingest": ingest, "export": export}


def main_bench() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    inputs = [*CORPUS, GEN_S]
    size = sum(p.stat().st_size for p in inputs)
    times: dict[bool, dict[str, list[float]]] = {
        False: {"ingest": [], "export": []}, True: {"ingest": [], "export": []}}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for encrypted in ((False, True) if r % 2 == 0 else (True, False)):
                for k, v in one_round(Path(tmp), encrypted, inputs).items():
                    times[encrypted][k].append(v)
    start = time.perf_counter()
    _derive(b"bench", b"0" * 16, KDF)
    kdf = time.perf_counter() - start
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}, {cpu_model()}, {os.cpu_count()} CPUs, {args.rounds} rounds, "
          f"inputs {len(inputs)} archives, {size / 2**20:.1f} MiB")
    print(f"key derivation (once per command): {kdf:.2f} s")
    for what in ("ingest", "export"):
        plain = statistics.median(times[False][what])
        sealed = statistics.median(times[True][what])
        mib = size / 2**20
        print(f"{what:6}  plain {plain:6.2f} s ({mib / plain:5.1f} MiB/s)  encrypted "
              f"{sealed:6.2f} s ({mib / sealed:5.1f} MiB/s)  ratio {sealed / plain:.3f}")


if __name__ == "__main__":
    main_bench()
