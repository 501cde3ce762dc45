"""End-to-end benchmark of ``coursevault ingest`` / ``export`` on big generated courses.

What it measures, for each size (MB of uncompressed XML) given by ``--sizes``:

1. **Peak RSS** of ``coursevault ingest`` and ``coursevault export``, each run as its own
   process under ``/usr/bin/time -v`` ("Maximum resident set size"; psutil polling of
   the process tree is the fallback when GNU time is missing).  Target: < 150 MB and
   flat across sizes.
2. **Throughput** in MB/s (MB = 10^6 bytes) of uncompressed archive content: the
   command's ``bytes_read`` (ingest) or ``bytes`` (export) divided by the wall time of
   the whole command.  A second figure subtracts the interpreter/CLI start-up, i.e. the
   median wall time of three ``coursevault version`` runs, and is labelled as such.
   Targets: ingest >= 30 MB/s, export >= 60 MB/s on one core: every measured
   command is pinned to one CPU (``--cpu``, default 0; -1 for none), and
   ``benchmarks/calibrate.py``'s yardstick is printed beside the run.
3. **Store growth** of the next night: ``pack_bytes + index_bytes`` from
   ``coursevault stats --json`` after ingesting night 2, minus the same after night 1,
   compared with the zstd size (level 3 and level 19) of *what actually changed*:

   * both archives are streamed (``tarfile``, no full extraction) and every regular
     member's content is hashed; members whose content differs, and members that are
     new in night 2, are extracted (only those) to a scratch folder;
   * for each such member, the Unix tool ``diff -a -u`` (3 lines of context, fixed
     ``--label`` headers) of night 1's version against night 2's (``/dev/null`` for a
     new member) is taken; a binary member (NUL byte in its first 64 KiB) counts with
     its whole new content instead; a member gone in night 2 counts as one line
     ``deleted NAME``;
   * all those diffs are concatenated in archive order and compressed as ONE zstd
     frame (python-zstandard), level 3 and level 19.  Target: growth <= 3x zstd-3.

   For reference the same is also reported with ``diff -U0`` (no context), and with
   one extra line per member whose tar header changed (mtime) -- information a
   faithful store must also keep.
4. **Round trip**: the exported archive of each night is decompressed with
   ``gzip -dc`` and its tar stream's SHA-256 compared to the original's (plus whether
   the .mbz files are byte-identical).

Optionally (``--profile SIZE``, default 100 when that size is run) a cProfile of a
separate night-1 ingest into a fresh repository, top 10 functions by own time and by
cumulative time.

Archives come from ``benchmarks/gen_course.py nights --nights 2`` and are cached in
``--keep DIR`` (default /tmp/cv-bench-archives/xml<N>mb-seed<S>/) and reused when present
(generating 1 GB takes minutes).  Repositories and scratch files go to a temporary
folder under /tmp, removed at the end (``--keep-work`` keeps it); COURSEVAULT_CACHE
points inside it so nothing lands in ~/.cache.

Results: a markdown report (``--out``, default /tmp/ingest-bench-results.md) with the
exact commands, CPU model and Python version, and a JSON sidecar next to it.  The
report is rewritten after every phase, so a long run that is stopped still leaves its
partial rows.  ``--merge`` keeps rows of other sizes from an earlier run's sidecar, so
``--sizes 1000 --merge`` after a default run yields one table with all three sizes.

    .venv/bin/python benchmarks/ingest_bench.py                      # 10 and 100 MB
    .venv/bin/python benchmarks/ingest_bench.py --sizes 1000 --merge # add the 1 GB row
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import platform
import pstats
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import calibrate  # beside this script (sys.path[0])
import zstandard

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MB = 1_000_000
RSS_LIMIT_MB = 150.0
INGEST_TARGET = 30.0
EXPORT_TARGET = 60.0
GROWTH_TARGET = 3.0
DEFAULT_ARCHIVES = Path("/tmp/cv-bench-archives")
DEFAULT_OUT = Path("/tmp/ingest-bench-results.md")
CHUNK = 1 << 20

PROFILE_CHILD = """\
import cProfile, sys
from coursevault.cli.app import main
prof = cProfile.Profile()
prof.enable()
try:
    rc = main(sys.argv[2:])
finally:
    prof.disable()
    prof.dump_stats(sys.argv[1])
sys.exit(rc)
"""


def _bin_dir() -> Path:
    venv = ROOT / ".venv" / "bin"
    return venv if (venv / "coursevault").exists() else Path(sys.executable).parent


BIN = _bin_dir()
CV = str(BIN / "coursevault")
PY = str(BIN / "python") if (BIN / "python").exists() else sys.executable
GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None


# --------------------------------------------------------------------------- running


class Measured:
    """One command run in its own process: wall seconds, peak RSS, output."""

    def __init__(
        self,
        argv: Sequence[str],
        seconds: float,
        peak_rss_kb: int,
        stdout: str,
        cpu_seconds: float | None = None,
    ) -> None:
        self.argv = list(argv)
        self.seconds = seconds
        self.peak_rss_kb = peak_rss_kb
        self.stdout = stdout
        # user + system time of the process (GNU time only): on a shared
        # machine, what the command cost, whoever else ran meanwhile
        self.cpu_seconds = cpu_seconds

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_kb * 1024 / MB

    def json_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out


class Bench:
    """Shared state: environment for the CLI, the log of commands run, progress output."""

    def __init__(self, work: Path, cpu: int | None = None) -> None:
        self.work = work
        # the CPU measured commands are pinned to (the targets are "on one core")
        self.cpu = cpu
        self.commands: list[str] = []
        self.env = dict(os.environ)
        self.env["COURSEVAULT_CACHE"] = str(work / "cache")
        self.env.pop("COURSEVAULT_REPO", None)
        self.env.pop("COURSEVAULT_CATALOG", None)
        # As a user's install does, cache the modules' bytecode: a sandbox that
        # sets this compiles coursevault's modules at every command, 0.06 s of
        # the 0.21 s start-up, which is most of a 10 MB export's time.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def run(self, argv: Sequence[str], cache: Path | None = None) -> str:
        """Run a helper command (not measured); returns stdout, raises on failure."""
        env = self._env(cache)
        self.commands.append(shlex.join(argv))
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout

    def measure(self, argv: Sequence[str], cache: Path | None = None) -> Measured:
        """Run ``argv`` as its own process; wall time and the process's peak RSS."""
        env = self._env(cache)
        pin = ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []
        if GNU_TIME is not None:
            self.commands.append(shlex.join([*pin, GNU_TIME, "-v", "-o", "RSS.txt", *argv]))
        else:
            self.commands.append(shlex.join([*pin, *argv]) + "  # peak RSS: psutil polling")
        if GNU_TIME is not None:
            return self._measure_gnu_time(argv, env)
        return self._measure_psutil(argv, env)

    def _pin(self) -> None:
        """In the child before it runs: keep it (and what it starts) on one CPU."""
        if self.cpu is not None:
            os.sched_setaffinity(0, {self.cpu})

    def _env(self, cache: Path | None) -> dict[str, str]:
        env = dict(self.env)
        if cache is not None:
            env["COURSEVAULT_CACHE"] = str(cache)
        return env

    def _measure_gnu_time(self, argv: Sequence[str], env: dict[str, str]) -> Measured:
        assert GNU_TIME is not None
        with tempfile.NamedTemporaryFile("r", dir=self.work, suffix=".time") as tf:
            cmd = [GNU_TIME, "-v", "-o", tf.name, *argv]
            t0 = time.perf_counter()
            proc = subprocess.run(
                cmd, env=env, capture_output=True, text=True, preexec_fn=self._pin
            )
            seconds = time.perf_counter() - t0
            report = Path(tf.name).read_text()
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} failed ({proc.returncode}): {proc.stderr}")
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
        if m is None:
            raise RuntimeError(f"no RSS in /usr/bin/time output: {report}")
        cpu = [re.search(rf"{what} time \(seconds\): ([0-9.]+)", report) for what in ("User", "System")]
        cpu_seconds = sum(float(c.group(1)) for c in cpu if c is not None)
        return Measured(argv, seconds, int(m.group(1)), proc.stdout, cpu_seconds)

    def _measure_psutil(self, argv: Sequence[str], env: dict[str, str]) -> Measured:
        import psutil  # type: ignore[import-untyped]

        with tempfile.TemporaryFile("w+", dir=self.work) as out:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                argv,
                env=env,
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=self._pin,
            )
            ps = psutil.Process(proc.pid)
            peak = 0
            stop = threading.Event()

            def poll() -> None:
                nonlocal peak
                while not stop.is_set():
                    with contextlib.suppress(psutil.Error):
                        rss = ps.memory_info().rss
                        for child in ps.children(recursive=True):
                            with contextlib.suppress(psutil.Error):
                                rss += child.memory_info().rss
                        peak = max(peak, rss)
                    stop.wait(0.01)

            th = threading.Thread(target=poll, daemon=True)
            th.start()
            _, err = proc.communicate()
            seconds = time.perf_counter() - t0
            stop.set()
            th.join()
            out.seek(0)
            stdout = out.read()
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} failed ({proc.returncode}): {err}")
        return Measured(argv, seconds, peak // 1024, stdout)


# --------------------------------------------------------------------------- archives


def ensure_archives(bench: Bench, cache_root: Path, xml_mb: int, seed: int) -> dict[str, Any]:
    """night-01.mbz and night-02.mbz of the course, generated once and cached."""
    folder = cache_root / f"xml{xml_mb}mb-seed{seed}"
    meta = folder / "gen.json"
    if meta.exists() and all((folder / f"night-0{n}.mbz").exists() for n in (1, 2)):
        info: dict[str, Any] = json.loads(meta.read_text())
        info["reused"] = True
        bench.log(f"{xml_mb} MB: reusing archives in {folder}")
        return info
    partial = cache_root / f".xml{xml_mb}mb-seed{seed}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    bench.log(f"{xml_mb} MB: generating night 1 and 2 into {folder} ...")
    argv = [PY, str(HERE / "gen_course.py"), "nights", "--out", str(partial), "--nights", "2"]
    argv += ["--xml-mb", str(xml_mb), "--seed", str(seed)]
    t0 = time.perf_counter()
    stdout = bench.run(argv)
    nights = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    for night in nights:
        night["path"] = str(folder / Path(night["path"]).name)
    info = {"xml_mb": xml_mb, "seed": seed, "nights": nights}
    info["gen_seconds"] = round(time.perf_counter() - t0, 1)
    (partial / "gen.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    info["reused"] = False
    return info


# --------------------------------------------------------------------------- what changed


def iter_tar(mbz: Path) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """Stream the members of a tgz .mbz (no random access, bounded memory)."""
    with tarfile.open(mbz, mode="r|gz") as tar:
        for info in tar:
            yield info, (tar.extractfile(info) if info.isfile() else None)


def digest_members(mbz: Path) -> dict[str, tuple[str, int, int]]:
    """name -> (sha256 of content, size, mtime) for every member (dirs: empty digest)."""
    out: dict[str, tuple[str, int, int]] = {}
    for info, fh in iter_tar(mbz):
        h = hashlib.sha256()
        if fh is not None:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
        out[info.name] = (h.hexdigest() if fh is not None else "", info.size, int(info.mtime))
    return out


def extract_some(mbz: Path, names: set[str], dest: Path) -> dict[str, Path]:
    """Extract only ``names`` (regular files) to dest/<n>; returns name -> path."""
    dest.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for info, fh in iter_tar(mbz):
        if fh is None or info.name not in names:
            continue
        path = dest / str(len(paths))
        with open(path, "wb") as out:
            shutil.copyfileobj(fh, out, CHUNK)
        paths[info.name] = path
    return paths


def _is_binary(path: Path) -> bool:
    with open(path, "rb") as fh:
        return b"\0" in fh.read(65536)


def _unified_diff(old: Path | None, new: Path, name: str, context: int) -> bytes:
    if _is_binary(new) or (old is not None and _is_binary(old)):
        return new.read_bytes()
    argv = ["diff", "-a", f"-U{context}", "--label", f"a/{name}", "--label", f"b/{name}"]
    argv += [str(old) if old is not None else os.devnull, str(new)]
    proc = subprocess.run(argv, capture_output=True)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"diff failed on {name}: {proc.stderr!r}")
    return proc.stdout


def change_between(bench: Bench, night1: Path, night2: Path, scratch: Path) -> dict[str, Any]:
    """What changed from night 1 to night 2, as unified diffs, and its zstd sizes."""
    t0 = time.perf_counter()
    d1 = digest_members(night1)
    d2 = digest_members(night2)
    changed = [n for n, (h, _, _) in d2.items() if h and (n not in d1 or d1[n][0] != h)]
    deleted = [n for n in d1 if n not in d2]
    header_only = [
        n for n, (h, size, mtime) in d2.items() if n in d1 and d1[n][0] == h and d1[n][2] != mtime
    ]
    new_paths = extract_some(night2, set(changed), scratch / "n2")
    old_paths = extract_some(night1, {n for n in changed if n in d1}, scratch / "n1")
    diffs: dict[int, list[bytes]] = {3: [], 0: []}
    for name in changed:
        for ctx in diffs:
            diffs[ctx].append(_unified_diff(old_paths.get(name), new_paths[name], name, ctx))
    tail = [f"deleted {n}\n".encode() for n in deleted]
    header_lines = [
        f"mtime {n} {d1[n][2]} -> {d2[n][2]}\n".encode()
        for n in d2
        if n in d1 and d1[n][2] != d2[n][2]
    ]
    u3 = b"".join(diffs[3] + tail)
    u0 = b"".join(diffs[0] + tail)
    with_headers = u3 + b"".join(header_lines)
    shutil.rmtree(scratch, ignore_errors=True)
    sizes = {
        name: {
            level: len(zstandard.ZstdCompressor(level=level).compress(data)) for level in (3, 19)
        }
        for name, data in (("u3", u3), ("u0", u0), ("u3_headers", with_headers))
    }
    per_member = sorted(
        ((n, len(d)) for n, d in zip(changed, diffs[3], strict=True)), key=lambda x: -x[1]
    )
    bench.log(f"  change computed in {time.perf_counter() - t0:.1f} s")
    return {
        "changed_members": len(changed),
        "new_members": sum(1 for n in changed if n not in d1),
        "deleted_members": len(deleted),
        "header_only_members": len(header_only),
        "mtime_changed_members": len(header_lines),
        "diff_u3_bytes": len(u3),
        "diff_u0_bytes": len(u0),
        "zstd3": sizes["u3"][3],
        "zstd19": sizes["u3"][19],
        "zstd3_u0": sizes["u0"][3],
        "zstd19_u0": sizes["u0"][19],
        "zstd3_headers": sizes["u3_headers"][3],
        "zstd19_headers": sizes["u3_headers"][19],
        "largest_diffs": per_member[:5],
        "seconds": round(time.perf_counter() - t0, 1),
    }


# --------------------------------------------------------------------------- round trip


def tar_stream_digest(mbz: Path) -> str:
    """SHA-256 of ``gzip -dc mbz`` (Python's gzip when the tool is missing)."""
    h = hashlib.sha256()
    if shutil.which("gzip"):
        proc = subprocess.Popen(["gzip", "-dc", str(mbz)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        while chunk := proc.stdout.read(CHUNK):
            h.update(chunk)
        if proc.wait() != 0:
            raise RuntimeError(f"gzip -dc {mbz} failed")
    else:
        with gzip.open(mbz, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- one size


def repo_stats(bench: Bench, repo: Path, cache: Path) -> dict[str, Any]:
    out = bench.run([CV, "stats", "-r", str(repo), "--json"], cache)
    stats: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    stats["dir_bytes"] = sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())
    return stats


def run_size(
    bench: Bench, xml_mb: int, gen: dict[str, Any], row: dict[str, Any], save: Any
) -> None:
    """Fill ``row`` for one course size; ``save()`` after each phase."""
    n1, n2 = (Path(n["path"]) for n in gen["nights"])
    folder = bench.work / f"xml{xml_mb}"
    repo, cache = folder / "repo", folder / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    bench.run([CV, "init", str(repo)], cache)

    for night, path in ((1, n1), (2, n2)):
        bench.log(f"{xml_mb} MB: ingest night {night} ...")
        m = bench.measure([CV, "ingest", "-r", str(repo), str(path), "--json"], cache)
        result = m.json_lines()[-1]
        stats = repo_stats(bench, repo, cache)
        row[f"ingest{night}"] = {
            "seconds": round(m.seconds, 2),
            "peak_rss_mb": round(m.peak_rss_mb, 1),
            "result": result,
            "stats": stats,
        }
        bench.log(
            f"  {m.seconds:.1f} s, {result['bytes_read'] / MB / m.seconds:.2f} MB/s, "
            f"peak RSS {m.peak_rss_mb:.1f} MB"
        )
        save()

    for night, path in ((1, n1), (2, n2)):
        snap = row[f"ingest{night}"]["result"]["snapshot"]
        out = folder / f"export-{night}.mbz"
        bench.log(f"{xml_mb} MB: export night {night} ...")
        m = bench.measure(
            [CV, "export", "-r", str(repo), snap[:16], "-o", str(out), "--json"], cache
        )
        result = m.json_lines()[-1]
        same_tar = tar_stream_digest(out) == tar_stream_digest(path)
        same_file = file_digest(out) == file_digest(path)
        row[f"export{night}"] = {
            "seconds": round(m.seconds, 2),
            "peak_rss_mb": round(m.peak_rss_mb, 1),
            "result": result,
            "tar_identical": same_tar,
            "mbz_identical": same_file,
        }
        out.unlink()
        bench.log(
            f"  {m.seconds:.1f} s, {result['bytes'] / MB / m.seconds:.2f} MB/s, "
            f"peak RSS {m.peak_rss_mb:.1f} MB, tar stream identical: {same_tar}"
        )
        save()

    bench.log(f"{xml_mb} MB: computing what changed between night 1 and 2 ...")
    row["change"] = change_between(bench, n1, n2, folder / "scratch")
    save()


def run_profile(bench: Bench, xml_mb: int, gen: dict[str, Any]) -> dict[str, Any]:
    """cProfile of a night-1 ingest into a fresh repository (separate process)."""
    n1 = Path(gen["nights"][0]["path"])
    folder = bench.work / f"profile{xml_mb}"
    repo, cache, prof = folder / "repo", folder / "cache", folder / "ingest.prof"
    folder.mkdir(parents=True, exist_ok=True)
    bench.run([CV, "init", str(repo)], cache)
    bench.log(f"{xml_mb} MB: profiling ingest of night 1 ...")
    argv = [PY, "-c", PROFILE_CHILD, str(prof), "ingest", "-r", str(repo), str(n1), "--json"]
    t0 = time.perf_counter()
    bench.run(argv, cache)
    seconds = time.perf_counter() - t0
    tables = {}
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        st = pstats.Stats(str(prof), stream=buf)
        if key == "tottime":
            st.strip_dirs().sort_stats(key).print_stats(10)
        else:  # the CLI framework's wrappers would fill the cumulative top 10
            st.sort_stats(key).print_stats(r"coursevault[/\\]", 10)
        text = buf.getvalue().replace(str(ROOT / "src") + os.sep, "")
        start = text.find("   ncalls")
        tables[key] = text[start:].rstrip() if start >= 0 else text.rstrip()
    shutil.rmtree(folder, ignore_errors=True)
    return {"xml_mb": xml_mb, "seconds": round(seconds, 1), "tables": tables}


# --------------------------------------------------------------------------- report


def _f(x: float | None, fmt: str = "{:.1f}") -> str:
    return "—" if x is None else fmt.format(x)


def _kb(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n / 1000:,.1f} kB" if n < 10 * MB else f"{n / MB:,.1f} MB"


def _rate(nbytes: int, seconds: float, startup: float) -> tuple[float, float | None]:
    """MB/s over the wall time, and over wall minus start-up (None when that is
    under half the wall time: start-up jitter would dominate the figure)."""
    wall = nbytes / MB / seconds
    net = seconds - startup
    return wall, (nbytes / MB / net if net >= seconds / 2 else None)


def summary_cells(row: dict[str, Any], startup: float) -> dict[str, str]:
    """The main table's cells for one size (— where a phase did not run)."""
    c: dict[str, str] = {"size": f"{row['xml_mb']} MB"}
    xml = row.get("xml_bytes")
    if xml:
        c["size"] += f" ({xml / MB:.1f} MB XML)"
    for kind, key in (("ingest", "bytes_read"), ("export", "bytes")):
        r = row.get(f"{kind}1")
        if r is None:
            c[f"{kind}_s"] = c[f"{kind}_rate"] = c[f"{kind}_rss"] = "—"
            continue
        wall, net = _rate(r["result"][key], r["seconds"], startup)
        c[f"{kind}_s"] = f"{r['seconds']:.1f}"
        c[f"{kind}_rate"] = f"{wall:.2f} ({_f(net, '{:.2f}')})"
        c[f"{kind}_rss"] = f"{r['peak_rss_mb']:.1f} MB"
    i1, i2, ch = row.get("ingest1"), row.get("ingest2"), row.get("change")
    growth = None
    if i1 and i2:
        s1, s2 = i1["stats"], i2["stats"]
        growth = s2["pack_bytes"] + s2["index_bytes"] - s1["pack_bytes"] - s1["index_bytes"]
    c["growth"] = _kb(growth)
    if ch:
        c["zstd"] = f"{_kb(ch['zstd3'])} / {_kb(ch['zstd19'])}"
    else:
        c["zstd"] = "—"
    if ch and growth is not None:
        c["ratio"] = f"{growth / ch['zstd3']:.2f}x / {growth / ch['zstd19']:.2f}x"
    else:
        c["ratio"] = "—"
    return c


def render(data: dict[str, Any]) -> str:
    rows = sorted(data["rows"].values(), key=lambda r: r["xml_mb"])
    startup = data["startup_seconds"]
    starts = ", ".join(
        f"{r['xml_mb']} MB row: {r.get('startup_seconds', startup):.2f} s" for r in rows
    )
    lines = [
        "# coursevault ingest/export benchmark",
        "",
        f"Generated by `benchmarks/ingest_bench.py`; last updated {data['updated']}.",
        "",
        "## Summary",
        "",
        "MB = 10^6 bytes. Rates are uncompressed archive content (ingest `bytes_read`, "
        "export `bytes`) over the command's wall time; in parentheses the same rate with "
        "the CLI start-up time subtracted (median wall time of 3 `coursevault version` "
        f"runs, measured in each bench run: {starts}; shown as — when start-up is more "
        "than half the command's wall time, as start-up alone varies by ±0.5 s on this "
        "shared machine). Ingest/export columns are night 1 (the full course into an "
        "empty repository; export of that snapshot). Peak RSS is GNU time's "
        '"Maximum resident set size" of that one process. Growth = (pack_bytes + '
        "index_bytes) after night 2 − after night 1. zstd of change = level 3 / level 19 "
        "of the concatenated `diff -u` of changed members (see below); ratio = growth / "
        "that.",
        "",
        "| size | ingest s | ingest MB/s (excl. start-up) | ingest peak RSS | export s "
        "| export MB/s (excl. start-up) | export peak RSS | night-2 growth "
        "| zstd of change (L3 / L19) | ratio (vs L3 / L19) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        c = summary_cells(row, row.get("startup_seconds", startup))
        lines.append(
            f"| {c['size']} | {c['ingest_s']} | {c['ingest_rate']} | {c['ingest_rss']} "
            f"| {c['export_s']} | {c['export_rate']} | {c['export_rss']} | {c['growth']} "
            f"| {c['zstd']} | {c['ratio']} |"
        )
    lines += ["", "### Targets", ""]
    lines += targets(rows, startup)
    lines += ["", "## Details", ""]
    lines += [
        "| size | night | ingest s | ingest peak RSS | new_objects | new_bytes | stored_bytes "
        "| pack+index after | repo dir after | export s | export peak RSS "
        "| export tar stream identical | .mbz byte-identical |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        for night in (1, 2):
            i, e = row.get(f"ingest{night}"), row.get(f"export{night}")
            cells = [f"{row['xml_mb']} MB", str(night)]
            if i:
                r, s = i["result"], i["stats"]
                cells += [
                    f"{i['seconds']:.1f}",
                    f"{i['peak_rss_mb']:.1f} MB",
                    str(r.get("new_objects", "—")),
                    _kb(r.get("new_bytes")),
                    _kb(r.get("stored_bytes")),
                    _kb(s["pack_bytes"] + s["index_bytes"]),
                    _kb(s["dir_bytes"]),
                ]
            else:
                cells += ["—"] * 7
            if e:
                cells += [
                    f"{e['seconds']:.1f}",
                    f"{e['peak_rss_mb']:.1f} MB",
                    "yes" if e["tar_identical"] else "**NO**",
                    "yes" if e["mbz_identical"] else "no",
                ]
            else:
                cells += ["—"] * 4
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## What changed between night 1 and night 2", ""]
    lines += [
        "Both .mbz archives are streamed with `tarfile` and each member's content hashed "
        "(SHA-256). Members whose content differs, or that are new in night 2, are "
        "extracted (only those); for each, the Unix `diff -a -u` (3 lines of context, "
        "headers `--label a/NAME`/`b/NAME`) of night 1's version against night 2's "
        "(`/dev/null` for a new member) is taken; a binary member would count with its "
        "whole new content, a deleted member as one line `deleted NAME`. The diffs are "
        "concatenated in archive order and compressed as one zstd frame "
        "(python-zstandard) at level 3 and 19. For reference also: `diff -U0` (no "
        "context), and the -u diff plus one line `mtime NAME OLD -> NEW` per member "
        "whose tar mtime changed (metadata a byte-exact store must keep too).",
        "",
        "| size | changed members (new / deleted) | mtime-only changes | diff -u bytes "
        "| zstd -u L3 / L19 | diff -U0 bytes | zstd -U0 L3 / L19 | zstd -u + mtimes L3 / L19 "
        "| growth / zstd-U0-L3 | growth / (zstd -u + mtimes L3) | growth: pack + index |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        ch = row.get("change")
        if not ch:
            continue
        i1, i2 = row.get("ingest1"), row.get("ingest2")
        growth, split = None, "—"
        if i1 and i2:
            s1, s2 = i1["stats"], i2["stats"]
            growth = s2["pack_bytes"] + s2["index_bytes"] - s1["pack_bytes"] - s1["index_bytes"]
            split = (
                f"{s2['pack_bytes'] - s1['pack_bytes']:,} + "
                f"{s2['index_bytes'] - s1['index_bytes']:,}"
            )
        r0 = f"{growth / ch['zstd3_u0']:.2f}x" if growth is not None else "—"
        rh = f"{growth / ch['zstd3_headers']:.2f}x" if growth is not None else "—"
        lines.append(
            f"| {row['xml_mb']} MB | {ch['changed_members']} ({ch['new_members']} / "
            f"{ch['deleted_members']}) | {ch['header_only_members']} "
            f"| {ch['diff_u3_bytes']:,} | {ch['zstd3']:,} / {ch['zstd19']:,} "
            f"| {ch['diff_u0_bytes']:,} | {ch['zstd3_u0']:,} / {ch['zstd19_u0']:,} "
            f"| {ch['zstd3_headers']:,} / {ch['zstd19_headers']:,} | {r0} | {rh} | {split} |"
        )
    for row in rows:
        ch = row.get("change")
        if ch:
            big = ", ".join(f"`{n}` {b:,} B" for n, b in ch["largest_diffs"])
            lines.append("")
            lines.append(f"Largest -u diffs at {row['xml_mb']} MB: {big}.")
    lines += ["", "## Generated archives", ""]
    lines += [
        "| size | night | xml_bytes | total_bytes | archive_bytes | members | night changes |"
    ]
    lines += ["|---|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        for n in row.get("gen", {}).get("nights", []):
            lines.append(
                f"| {row['xml_mb']} MB | {n['night']} | {n['xml_bytes']:,} | {n['total_bytes']:,} "
                f"| {n['archive_bytes']:,} | {n['members']} | {json.dumps(n.get('changes', {}))} |"
            )
    if data.get("profile"):
        p = data["profile"]
        lines += [
            "",
            f"## cProfile: ingest of night 1, {p['xml_mb']} MB course",
            "",
            f"Separate run into a fresh repository, under cProfile ({p['seconds']} s wall "
            "with profiling overhead). Top 10 by own time (tottime):",
            "",
            "```",
            p["tables"]["tottime"],
            "```",
            "",
            "Top 10 coursevault functions by cumulative time:",
            "",
            "```",
            p["tables"]["cumulative"],
            "```",
        ]
    lines += ["", "## Environment", ""]
    for key, value in data["env"].items():
        lines.append(f"- {key}: {value}")
    lines += ["", "## Runs and exact commands", ""]
    for run in data["runs"]:
        lines += [
            f"### `{run['invocation']}` ({run['started']}, sizes {run['sizes']})",
            "",
            f"Load average at start: {run['load_start']}; at end: {run.get('load_end', '—')}. "
            f"benchmarks/calibrate.py at start: {run.get('calibrate', '—')}; "
            f"{run.get('cpu', 'not pinned')}.",
            "",
            "```",
            *run["commands"],
            "```",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def targets(rows: Sequence[dict[str, Any]], startup: float) -> list[str]:
    """One line per target: met or not, from the rows present."""
    out = []
    for kind, limit in (("ingest", RSS_LIMIT_MB), ("export", RSS_LIMIT_MB)):
        rss = [
            (r["xml_mb"], n, r[f"{kind}{n}"]["peak_rss_mb"])
            for r in rows
            for n in (1, 2)
            if r.get(f"{kind}{n}")
        ]
        if not rss:
            continue
        worst = max(v for _, _, v in rss)
        values = ", ".join(f"{s} MB night {n}: {v:.1f}" for s, n, v in rss)
        flat = worst / min(v for _, _, v in rss)
        out.append(
            f"- {kind} peak RSS < {limit:.0f} MB: {'met' if worst < limit else '**NOT met**'} "
            f"(max {worst:.1f} MB; all runs {values}; max/min {flat:.2f})"
        )
    for kind, key, goal in (
        ("ingest", "bytes_read", INGEST_TARGET),
        ("export", "bytes", EXPORT_TARGET),
    ):
        rates = []
        for r in rows:
            m = r.get(f"{kind}1")
            if m:
                su = r.get("startup_seconds", startup)
                rates.append((r["xml_mb"], *_rate(m["result"][key], m["seconds"], su)))
        if not rates:
            continue
        ok = all(net is not None and net >= goal for _, _, net in rates)
        detail = ", ".join(f"{s} MB: {w:.2f} ({_f(n, '{:.2f}')})" for s, w, n in rates)
        out.append(
            f"- {kind} >= {goal:.0f} MB/s: {'met' if ok else '**NOT met**'} "
            f"(wall (excl. start-up): {detail})"
        )
    for r in rows:
        ch, i1, i2 = r.get("change"), r.get("ingest1"), r.get("ingest2")
        if not (ch and i1 and i2):
            continue
        s1, s2 = i1["stats"], i2["stats"]
        growth = s2["pack_bytes"] + s2["index_bytes"] - s1["pack_bytes"] - s1["index_bytes"]
        ratio = growth / ch["zstd3"]
        out.append(
            f"- {r['xml_mb']} MB growth <= {GROWTH_TARGET:.0f}x zstd-3 of change: "
            f"{'met' if ratio <= GROWTH_TARGET else '**NOT met**'} ({ratio:.2f}x)"
        )
    bad = [
        f"{r['xml_mb']} MB night {n}"
        for r in rows
        for n in (1, 2)
        if r.get(f"export{n}") and not r[f"export{n}"]["tar_identical"]
    ]
    done = [r for r in rows if r.get("export1")]
    if done:
        out.append(
            "- export round trip (tar stream identical): "
            + ("met for every export" if not bad else f"**FAILED** for {', '.join(bad)}")
        )
    return out


def environment() -> dict[str, str]:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pyver = subprocess.run([PY, "-VV"], capture_output=True, text=True).stdout.strip()
    cvver = subprocess.run([CV, "version"], capture_output=True, text=True).stdout.strip()
    mem = "?"
    with contextlib.suppress(OSError, IndexError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    return {
        "CPU model": cpu,
        "CPUs (os.cpu_count)": str(os.cpu_count()),
        "memory": mem,
        "Python (venv)": pyver,
        "coursevault": cvver,
        "kernel": platform.platform(),
        "peak RSS tool": "GNU /usr/bin/time -v" if GNU_TIME else "psutil polling (10 ms)",
        "zstandard": zstandard.__version__,
    }


def startup_seconds(bench: Bench) -> float:
    times = [bench.measure([CV, "version"]).seconds for _ in range(3)]
    return statistics.median(times)


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100", help="MB of XML, comma-separated")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--keep",
        type=Path,
        default=DEFAULT_ARCHIVES,
        help="folder caching generated archives between runs (default %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown report")
    parser.add_argument(
        "--merge", action="store_true", help="keep other sizes' rows from the earlier sidecar"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=None,
        help="size whose night-1 ingest to cProfile (default 100 if run; 0 = none)",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep repositories")
    parser.add_argument(
        "--cpu",
        type=int,
        default=0,
        help="the CPU measured commands are pinned to (-1: not pinned); default %(default)s",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    profile_size = args.profile if args.profile is not None else (100 if 100 in sizes else 0)

    sidecar = args.out.with_suffix(".json")
    data: dict[str, Any] = {"rows": {}, "runs": [], "profile": None}
    if args.merge and sidecar.exists():
        data = json.loads(sidecar.read_text())
        for size in sizes:
            data["rows"].pop(str(size), None)
        if profile_size:
            data["profile"] = None
    work = Path(tempfile.mkdtemp(prefix="cv-ingest-bench-", dir="/tmp"))
    bench = Bench(work, args.cpu if args.cpu >= 0 and hasattr(os, "sched_setaffinity") else None)
    invocation = (
        shlex.join([PY, *sys.argv]) if argv is None else shlex.join(["ingest_bench.py", *argv])
    )
    run_info: dict[str, Any] = {
        "invocation": invocation,
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "sizes": ",".join(map(str, sizes)),
        "load_start": _load(),
        "calibrate": calibrate.measure(),
        "cpu": "not pinned" if bench.cpu is None else f"measured commands on CPU {bench.cpu}",
        "commands": bench.commands,
    }
    data["runs"].append(run_info)
    data["env"] = environment()
    bench.log(f"work folder {work}; report {args.out}")

    def save() -> None:
        data["updated"] = dt.datetime.now().isoformat(timespec="seconds")
        run_info["load_end"] = _load()
        sidecar.write_text(json.dumps(data, indent=1))
        args.out.write_text(render(data))

    startup = startup_seconds(bench)
    data["startup_seconds"] = startup
    run_info["startup_seconds"] = round(startup, 3)
    bench.log(f"CLI start-up (coursevault version, median of 3): {startup:.2f} s")
    try:
        for size in sizes:
            gen = ensure_archives(bench, args.keep, size, args.seed)
            row: dict[str, Any] = {
                "xml_mb": size,
                "xml_bytes": gen["nights"][0]["xml_bytes"],
                "gen": gen,
                "startup_seconds": startup,
            }
            data["rows"][str(size)] = row
            save()
            run_size(bench, size, gen, row, save)
            if size == profile_size:
                data["profile"] = run_profile(bench, size, gen)
                save()
            if not args.keep_work:
                shutil.rmtree(work / f"xml{size}", ignore_errors=True)
    finally:
        save()
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    text = args.out.read_text()
    start = text.find("## Summary")
    end = text.find("## Details")
    print(text[start:end].rstrip())
    print(f"\nfull report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
