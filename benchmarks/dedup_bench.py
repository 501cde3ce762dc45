"""Thirty nights of one course: coursevault against restic, borg and an information floor.

What a site keeps when it keeps every nightly Moodle backup of a course, measured in one
run on the same files (``benchmarks/gen_course.py nights``: night 1 is the course, each
later night adds forum posts, log records, grades, sometimes a file):

* **mbz** -- Moodle's way: the sum of the nights' ``.mbz`` sizes;
* **restic-mbz / restic-dir** -- ``restic backup`` of each night's ``.mbz`` (one repository),
  and, in a second repository, of a folder into which each night is extracted
  (``tar -xzf``; the same folder path every night, the previous night's contents removed
  first).  ``RESTIC_PASSWORD`` is set, the cache is restic's default one but placed under
  the work folder (``RESTIC_CACHE_DIR``);
* **borg-mbz / borg-dir** -- the same two ways with ``borg init --encryption=none`` and
  ``borg create --compression zstd,3`` (``BORG_BASE_DIR`` under the work folder);
* **coursevault** -- ``coursevault init REPO`` then ``coursevault ingest -r REPO
  night-NN.mbz --json`` night by night (``COURSEVAULT_CACHE`` under the work folder);
* **floor** -- an information floor: ``gzip -dc night-01.mbz | zstd -19`` plus, for each
  later night, ``xdelta3 -e -9 -s prev.tar cur.tar | zstd -19`` where the tars are
  ``gzip -dc`` of the ``.mbz`` files (``-B`` is added only when a tar exceeds xdelta3's
  default 64 MiB source window, so that the whole previous night stays visible).

For each: the store size (``du -sb`` of the repository folder; local caches are not part
of the store and are reported apart), that size as a ratio to the floor, the store after
night 1, the total wall time of the nightly commands and per night, the peak RSS (the
maximum over the nightly processes of GNU ``/usr/bin/time -v`` "Maximum resident set
size"; for ``bash -c`` pipelines it is the largest process of the pipeline), and the
median per-night growth over nights 2..N compared with the floor's median delta.
Repository creation (``init``) and the extraction of the folder are not timed as the
tool's work (extraction time is reported separately).

Data sets (``--sets``; ``small`` = ``sample24,simplecert``):

* ``sample24`` -- ``--from shared/corpus/moodle/moodle2cc_sample_course_24.mbz``, 30 nights;
* ``simplecert`` -- ``--from .../mod_simplecertificate_tests_other_backup-test-course-for-
  moodle3.1-and-above-fixed.mbz``, 30 nights;
* ``big`` -- synthetic ``--xml-mb 50`` (one forum.xml over 20 MB), 10 nights.

Targets (from the issue), each reported PASS/FAIL: small courses -- coursevault within
1.05x the floor and >= 15x smaller than restic and borg on the .mbz files; big course --
night 1 within 1.25x the floor's night 1, every later night's growth within 1.5x that
night's floor delta and >= 30x less than restic's and borg's over the extracted folder;
all -- coursevault's time per night no worse than restic's on the same .mbz files.

For coursevault the report also breaks the store down: pack, index and snapshot files
and directory entries (what ``du`` counts) with their per-night growth; inside the packs
the headers, entry tables and compressed payload by object type and tree-node kind, for
all packs and for the packs of nights 2..N alone (decoded with coursevault's own
``store.pack``/``store.index``/``store.treecodec`` readers, so the walk follows the format
the code writes); the index entries; a what-if -- each later night's new objects as one
zstd frame at level 3 and 19, alone and with the earlier nights' tree objects as a
dictionary -- and ``coursevault stats --json``.

Others edit coursevault while a run of many minutes goes on, so by default the run first
takes a frozen copy of its source (checked: every file compiles and ``coursevault
version`` runs from it; retaken after a pause otherwise) into ``WORKDIR/frozen-src/``, and
runs the console script with ``PYTHONPATH`` pointing at it (ahead of the editable
install); ``--live`` runs the live tree instead.  The report gives the copy's fingerprint
and whether the live tree changed meanwhile; ``--source WORKDIR/frozen-src/<fingerprint>``
runs an earlier copy again, so data sets run one at a time can share the same code.

Layout: ``WORKDIR/<set>/nights/night-NN.mbz`` (regenerated unless ``--keep`` and present),
``WORKDIR/<set>/<tool>/`` (repositories, recreated every run, left in place afterwards).
Results: markdown tables on stdout and in ``--out`` (default /tmp/dedup-bench-results.md)
with the command line, tool versions and CPU model; a JSON sidecar next to it keeps the
data sets of earlier runs, so running the sets one at a time builds one report.

    .venv/bin/python benchmarks/dedup_bench.py --sets sample24 --keep
    .venv/bin/python benchmarks/dedup_bench.py --sets big --tools coursevault,floor,mbz
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import itertools
import json
import os
import platform
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from machine import cpu_model

HERE = Path(__file__).resolve().parent
GEN = HERE / "gen_course.py"
GNU_TIME = "/usr/bin/time"
RESTIC_PASSWORD = "dedup-bench"
XDELTA_DEFAULT_WINDOW = 64 * 2**20
SEED = 1


def corpus_dir() -> Path:
    """shared/corpus/moodle beside the project (as in CI), else /work/shared."""
    for base in (HERE.parent.parent / "shared", Path("/work/shared")):
        path = base / "corpus" / "moodle"
        if path.is_dir():
            return path
    return HERE.parent.parent / "shared" / "corpus" / "moodle"


@dataclass(frozen=True)
class DataSet:
    name: str
    title: str
    kind: str  # "small" or "big": which targets apply
    nights: int
    xml_mb: float | None = None
    corpus: str | None = None  # file name in shared/corpus/moodle

    def gen_args(self) -> list[str]:
        if self.corpus is not None:
            return ["--from", str(corpus_dir() / self.corpus)]
        return ["--xml-mb", f"{self.xml_mb:g}"]


DATASETS: dict[str, DataSet] = {
    d.name: d
    for d in (
        DataSet(
            "sample24",
            "1. moodle2cc_sample_course_24.mbz + nightly change",
            "small",
            30,
            corpus="moodle2cc_sample_course_24.mbz",
        ),
        DataSet(
            "simplecert",
            "2. mod_simplecertificate ... moodle3.1-and-above-fixed.mbz + nightly change",
            "small",
            30,
            corpus="mod_simplecertificate_tests_other_backup-test-course-for-moodle3.1-and-above-fixed.mbz",
        ),
        DataSet("big", "3. synthetic big course, --xml-mb 50", "big", 10, xml_mb=50.0),
    )
}
SET_GROUPS = {"small": ["sample24", "simplecert"], "big": ["big"]}

TOOL_GROUPS = {
    "mbz": ["mbz"],
    "restic": ["restic-mbz", "restic-dir"],
    "borg": ["borg-mbz", "borg-dir"],
    "coursevault": ["coursevault"],
    "floor": ["floor"],
}
ROW_ORDER = ["mbz", "restic-mbz", "restic-dir", "borg-mbz", "borg-dir", "coursevault", "floor"]
LABELS = {
    "mbz": "Moodle: sum of .mbz",
    "restic-mbz": "restic, .mbz files",
    "restic-dir": "restic, extracted folder",
    "borg-mbz": "borg, .mbz files",
    "borg-dir": "borg, extracted folder",
    "coursevault": "coursevault",
    "floor": "floor (zstd-19 + xdelta3)",
}


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------- processes


@dataclass
class Measured:
    seconds: float
    rss_kb: int
    stdout: str
    cpu_s: float = 0.0  # user + system seconds of the process (and its reaped children)


def run(argv: Sequence[str], env: dict[str, str] | None = None, log: Path | None = None) -> str:
    """Run an untimed helper command; raise BenchError with its output on failure."""
    proc = subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False)
    if log is not None:
        _log(log, argv, proc.stdout, proc.stderr, None)
    if proc.returncode != 0:
        raise BenchError(
            f"{shlex.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout


def measure(argv: Sequence[str], env: dict[str, str], log: Path) -> Measured:
    """Run ``argv`` under GNU time -v: wall seconds (perf_counter around it) and max RSS."""
    tfile = log.with_name(log.name + ".time")
    full = [GNU_TIME, "-v", "-o", str(tfile), *argv]
    started = time.perf_counter()
    proc = subprocess.run(full, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    _log(log, argv, proc.stdout, proc.stderr, seconds)
    if proc.returncode != 0:
        raise BenchError(
            f"{shlex.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        )
    rss, cpu = 0, 0.0
    for line in tfile.read_text().splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.rsplit(":", 1)[1])
        elif "User time (seconds)" in line or "System time (seconds)" in line:
            cpu += float(line.rsplit(":", 1)[1])
    return Measured(seconds, rss, proc.stdout, cpu)


def _log(log: Path, argv: Sequence[str], out: str, err: str, seconds: float | None) -> None:
    with log.open("a", encoding="utf-8") as fh:
        took = f"  # {seconds:.3f} s" if seconds is not None else ""
        fh.write(f"$ {shlex.join(argv)}{took}\n{out[-4000:]}{err[-4000:]}\n")


def du(path: Path) -> int:
    """``du -sb`` of a path (0 if it does not exist)."""
    if not path.exists():
        return 0
    return int(run(["du", "-sb", str(path)]).split()[0])


def live_source() -> Path | None:
    """The coursevault package folder the venv would import (without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("coursevault")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).resolve().parent


def fingerprint(root: Path | None) -> str:
    """Short hash of a coursevault source folder's .py files."""
    if root is None or not root.is_dir():
        return "none"
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


# PYTHONPATH for the coursevault processes: a frozen copy of the source (see freeze_source)
FROZEN: dict[str, str] = {}


def freeze_source(workdir: Path, tries: int = 20, source: Path | None = None) -> dict[str, str]:
    """Copy coursevault's source to WORKDIR/frozen-src/<fingerprint>/ and use that copy.

    Others edit the live tree while a run that takes many minutes goes on -- a half-saved
    file fails a night, a finished edit changes the store format between nights.  The
    copy is checked (every file compiles, ``coursevault version`` runs from it) and
    retaken after a pause when it is not; the coursevault processes and this script's
    decoders then import it (PYTHONPATH / sys.path first, ahead of the editable install).
    """
    live = source / "coursevault" if source is not None else live_source()
    if live is None or not live.is_dir():
        raise SystemExit(f"no coursevault package to run: {live}")
    for attempt in range(tries):
        fp = fingerprint(live)
        dest = workdir / "frozen-src" / fp
        if not (dest / "coursevault").is_dir():
            tmp = workdir / "frozen-src" / f".{fp}.{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(live, tmp / "coursevault", ignore=shutil.ignore_patterns("__pycache__"))
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        ok = fingerprint(dest / "coursevault") == fp
        try:
            for path in (dest / "coursevault").rglob("*.py"):
                compile(path.read_bytes(), str(path), "exec")
            env = base_env() | {"PYTHONPATH": str(dest)}
            version = run([coursevault_bin(), "version"], env).strip()
        except (SyntaxError, BenchError):
            ok = False
        if ok:
            sys.path.insert(0, str(dest))
            FROZEN.update(
                path=str(dest),
                fingerprint=fp,
                version=version,
                taken=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
                live=str(live),
            )
            return FROZEN
        print(f"coursevault source {fp} does not run yet (attempt {attempt + 1}); waiting")
        shutil.rmtree(dest, ignore_errors=True)
        time.sleep(15)
    raise SystemExit("could not take a working copy of coursevault's source")


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("RESTIC_", "BORG_", "COURSEVAULT_")):
            del env[key]
    # an installed coursevault has its bytecode cached; without this a sandbox
    # that sets the variable compiles its modules at every command (0.06 s)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# ---------------------------------------------------------------- tools


class Tool:
    """One way of keeping the nights; its folder is WORKDIR/<set>/<name>."""

    name = ""
    source = "mbz"  # "mbz" or "dir": what it backs up

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log = folder / "commands.log"

    def setup(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)

    def night(self, n: int, mbz: Path, tree: Path) -> Measured:
        raise NotImplementedError

    def store_bytes(self) -> int:
        return du(self.folder / "repo")

    def cache_bytes(self) -> int | None:
        return None


class MbzTool(Tool):
    name = "mbz"

    def setup(self) -> None:
        self.total = 0

    def night(self, n: int, mbz: Path, tree: Path) -> Measured:
        self.total += mbz.stat().st_size
        return Measured(0.0, 0, "")

    def store_bytes(self) -> int:
        return self.total


class ResticTool(Tool):
    def __init__(self, folder: Path, source: str) -> None:
        super().__init__(folder)
        self.name, self.source = f"restic-{source}", source
        self.env = base_env() | {
            "RESTIC_PASSWORD": RESTIC_PASSWORD,
            "RESTIC_CACHE_DIR": str(folder / "cache"),
        }

    def setup(self) -> None:
        super().setup()
        run(["restic", "-r", str(self.folder / "repo"), "init"], self.env, self.log)

    def night(self, n: int, mbz: Path, tree: Path) -> Measured:
        target = mbz if self.source == "mbz" else tree
        argv = ["restic", "-r", str(self.folder / "repo"), "backup", "--quiet"]
        return measure([*argv, "--host", "dedup-bench", str(target)], self.env, self.log)

    def cache_bytes(self) -> int | None:
        return du(self.folder / "cache")


class BorgTool(Tool):
    def __init__(self, folder: Path, source: str) -> None:
        super().__init__(folder)
        self.name, self.source = f"borg-{source}", source
        self.env = base_env() | {
            "BORG_BASE_DIR": str(folder / "base"),
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }

    def setup(self) -> None:
        super().setup()
        run(["borg", "init", "--encryption=none", str(self.folder / "repo")], self.env, self.log)

    def night(self, n: int, mbz: Path, tree: Path) -> Measured:
        target = mbz if self.source == "mbz" else tree
        archive = f"{self.folder / 'repo'}::night-{n:02d}"
        argv = ["borg", "create", "--compression", "zstd,3", archive, str(target)]
        return measure(argv, self.env, self.log)

    def cache_bytes(self) -> int | None:
        return du(self.folder / "base")


def coursevault_bin() -> str:
    local = Path(sys.executable).parent / "coursevault"
    return str(local) if local.exists() else (shutil.which("coursevault") or "coursevault")


class CoursevaultTool(Tool):
    name = "coursevault"

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.env = base_env() | {"COURSEVAULT_CACHE": str(folder / "cache")}
        if FROZEN:
            self.env["PYTHONPATH"] = FROZEN["path"]
        self.ingests: list[dict[str, Any]] = []
        self.parts: list[dict[str, int]] = []  # store parts after each night
        self.night1_packs: frozenset[str] = frozenset()
        self.night_packs: list[list[str]] = []  # pack files each night added

    def setup(self) -> None:
        super().setup()
        self.ingests, self.parts, self.night_packs = [], [], []
        run([coursevault_bin(), "init", str(self.folder / "repo")], self.env, self.log)

    def night(self, n: int, mbz: Path, tree: Path) -> Measured:
        argv = [coursevault_bin(), "ingest", "-r", str(self.folder / "repo"), str(mbz), "--json"]
        m = measure(argv, self.env, self.log)
        for line in m.stdout.splitlines():
            if line.strip().startswith("{"):
                self.ingests.append(json.loads(line))
        self.parts.append(store_parts(self.folder / "repo"))
        packs = self.folder / "repo" / "packs"
        now = {str(x.relative_to(packs)) for x in packs.rglob("*") if x.is_file()}
        before = {x for night in self.night_packs for x in night}
        self.night_packs.append(sorted(now - before))
        if n == 1:
            self.night1_packs = frozenset(Path(x).name for x in now)
        return m

    def cache_bytes(self) -> int | None:
        return du(self.folder / "cache")

    def stats(self) -> dict[str, Any]:
        argv = [coursevault_bin(), "stats", "-r", str(self.folder / "repo"), "--json"]
        return dict(json.loads(run(argv, self.env, self.log)))


class FloorTool(Tool):
    name = "floor"

    def setup(self) -> None:
        super().setup()
        self.total = 0
        self.commands: list[str] = []

    def night(self, n: int, mbz: Path, tree: Path) -> Measured:
        cur, prev = self.folder / "cur.tar", self.folder / "prev.tar"
        out = self.folder / f"floor-{n:02d}.zst"
        q = shlex.quote
        if n == 1:
            script = f"gzip -dc {q(str(mbz))} | tee {q(str(cur))} | zstd -19 -q -c > {q(str(out))}"
        else:
            window = ""
            biggest = max(prev.stat().st_size, _gunzipped_size_hint(mbz))
            if biggest > XDELTA_DEFAULT_WINDOW:
                window = f"-B {1 << (biggest - 1).bit_length()} "
            script = (
                f"gzip -dc {q(str(mbz))} > {q(str(cur))} && "
                f"xdelta3 -e -9 {window}-c -s {q(str(prev))} {q(str(cur))} "
                f"| zstd -19 -q -c > {q(str(out))}"
            )
        self.commands.append(script)
        m = measure(["bash", "-c", "set -o pipefail; " + script], base_env(), self.log)
        cur.replace(prev)
        self.total += out.stat().st_size
        return m

    def store_bytes(self) -> int:
        return self.total


def _gunzipped_size_hint(mbz: Path) -> int:
    """ISIZE of the gzip trailer (uncompressed size mod 2^32): enough to pick -B."""
    with mbz.open("rb") as fh:
        fh.seek(-4, os.SEEK_END)
        return int(struct.unpack("<I", fh.read(4))[0])


def make_tool(name: str, folder: Path) -> Tool:
    if name == "mbz":
        return MbzTool(folder)
    if name.startswith("restic-"):
        return ResticTool(folder, name.split("-", 1)[1])
    if name.startswith("borg-"):
        return BorgTool(folder, name.split("-", 1)[1])
    if name == "coursevault":
        return CoursevaultTool(folder)
    if name == "floor":
        return FloorTool(folder)
    raise ValueError(name)


# ---------------------------------------------------------------- coursevault store anatomy


def store_parts(repo: Path) -> dict[str, int]:
    """Bytes per top-level part of a coursevault repository, plus directory entries."""
    parts: dict[str, int] = {"packs": 0, "index": 0, "snapshots": 0, "other files": 0}
    counts: dict[str, int] = {k + " (files)": 0 for k in parts}
    for path in repo.rglob("*"):
        if not path.is_file():
            continue
        top = path.relative_to(repo).parts[0]
        key = top if top in ("packs", "index", "snapshots") else "other files"
        parts[key] += path.stat().st_size
        counts[key + " (files)"] += 1
    total = du(repo)
    parts["directory entries"] = total - sum(parts.values())
    parts["du -sb"] = total
    return parts | counts


@functools.lru_cache(maxsize=4)
def _block_reader(repo: Path) -> Any:
    """A block reader that resolves dictionary blocks (codec 2) through the
    repository (its catalog in a throwaway cache folder)."""
    from coursevault.store.backend import LocalBackend
    from coursevault.store.repository import Repository

    cache = tempfile.mkdtemp(prefix="cv-bench-cache-")
    return Repository.open(LocalBackend(repo), cache_dir=cache).block_reader


def iter_blocks(
    path: Path,
) -> Iterator[tuple[int, int, int, int, bytes, list[tuple[int, int, int]]]]:
    """Blocks of one pack file, decoded with coursevault's own reader.

    Yields (codec, header+table bytes, stored payload bytes, raw length, raw payload,
    entries (type, offset, length)); the layout constants come from
    ``coursevault.store.pack``, so the walk follows the format the code writes.
    """
    from coursevault.store import pack as cvpack

    data = path.read_bytes()
    reader = _block_reader(path.parents[2])  # REPO/packs/xx/<id>
    pos = len(cvpack.PACK_HEADER)
    while pos < len(data):
        _magic, codec, stored_len, raw_len, n = cvpack.BLOCK_HEAD.unpack_from(data, pos)
        table = cvpack.table_start(codec) + n * cvpack.ENTRY.size
        block = data[pos : pos + table + stored_len]
        raw, entries = reader.decode(block)
        yield codec, table, stored_len, raw_len, raw, [tuple(e) for e in entries]
        pos += table + stored_len


def pack_anatomy(repo: Path, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Add up the bytes of the pack files (but those named in ``skip``) and index files.

    Decoding uses coursevault's own modules (``store.pack``, ``store.index``,
    ``store.treecodec``, ``store.ids``); docs/format.md describes the layout.
    """
    from coursevault.store import index as cvindex
    from coursevault.store import pack as cvpack
    from coursevault.store.ids import ObjectType, object_id
    from coursevault.store.treecodec import decode_tree

    out: dict[str, Any] = {
        "packs": 0,
        "pack_file_bytes": 0,
        "pack_headers": 0,
        "blocks": 0,
        "block_headers": 0,
        "entry_tables": 0,
        "entry_size": cvpack.ENTRY.size,
        "block_head_size": cvpack.BLOCK_HEAD.size,
        "payload_stored": 0,
        "payload_raw": 0,
        "blocks_zstd": 0,
        "blocks_raw": 0,
        "objects": 0,
    }
    types: dict[str, dict[str, float]] = {}
    kinds: dict[str, dict[str, float]] = {}
    mtimes_ids: set[bytes] = set()
    seen: set[bytes] = set()
    dups = {"objects": 0, "raw": 0, "stored≈": 0.0}
    blob_sizes: dict[bytes, tuple[int, float]] = {}
    for path in sorted((repo / "packs").rglob("*")):
        if not path.is_file() or path.name in skip or path.name.startswith("."):
            continue
        out["packs"] += 1
        out["pack_file_bytes"] += path.stat().st_size
        out["pack_headers"] += len(cvpack.PACK_HEADER)
        for codec, table, stored_len, raw_len, raw, entries in iter_blocks(path):
            out["blocks"] += 1
            out["block_headers"] += cvpack.table_start(codec)  # with a dictionary id
            out["entry_tables"] += table - cvpack.table_start(codec)
            out["payload_stored"] += stored_len
            out["payload_raw"] += raw_len
            out["objects"] += len(entries)
            out["blocks_raw" if codec == cvpack.CODEC_RAW else "blocks_zstd"] += 1
            share = stored_len / raw_len if raw_len else 0.0
            for otype, off, length in entries:
                obj = raw[off : off + length]
                oid = object_id(ObjectType(otype), obj)
                tname = {1: "blob", 2: "tree"}.get(otype, f"type{otype}")
                t = types.setdefault(tname, {"objects": 0, "raw": 0, "stored≈": 0.0})
                t["objects"] += 1
                t["raw"] += length
                t["stored≈"] += length * share
                if oid in seen:
                    dups["objects"] += 1
                    dups["raw"] += length
                    dups["stored≈"] += length * share
                seen.add(oid)
                if otype == ObjectType.BLOB:
                    blob_sizes[oid] = (length, length * share)
                if otype != ObjectType.TREE:
                    continue
                refs, body = decode_tree(obj)
                kind = chr(body[0]) if body else "?"
                if kind == "A" and len(refs) >= 2:
                    mtimes_ids.add(refs[1])
                k = kinds.setdefault(
                    kind, {"objects": 0, "raw": 0, "child ids": 0, "body": 0, "stored≈": 0.0}
                )
                k["objects"] += 1
                k["raw"] += length
                k["child ids"] += length - len(body)
                k["body"] += len(body)
                k["stored≈"] += length * share
    mt = [blob_sizes[i] for i in mtimes_ids if i in blob_sizes]
    out["mtimes_blobs"] = {
        "objects": len(mt),
        "raw": sum(r for r, _ in mt),
        "stored≈": sum(s for _, s in mt),
    }
    out["duplicates"] = dups
    out["types"] = types
    out["tree_kinds"] = dict(sorted(kinds.items()))
    idx = {"files": 0, "bytes": 0, "entries": 0, "pack_refs": 0, "unique_ids": 0}
    ids: set[bytes] = set()
    packs_named: set[bytes] = set()
    for path in sorted((repo / "index").glob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        idx["files"] += 1
        idx["bytes"] += path.stat().st_size
        for oid, loc in cvindex.decode_index(path.read_bytes()):
            idx["entries"] += 1
            ids.add(oid)
            packs_named.add(loc.pack)
    idx["unique_ids"] = len(ids)
    idx["pack_refs"] = len(packs_named)
    out["index"] = idx
    return out


def pack_objects(path: Path) -> list[tuple[int, bytes]]:
    """(type, raw bytes) of every object of one pack file, in pack order."""
    out: list[tuple[int, bytes]] = []
    for _codec, _table, _stored, _raw_len, raw, entries in iter_blocks(path):
        out += [(t, raw[off : off + length]) for t, off, length in entries]
    return out


CONTEXT_DICT_BYTES = 16 * 2**20


def context_whatif(repo: Path, night_packs: list[list[str]]) -> dict[str, list[int]]:
    """How small could each later night's new objects get with more compression context?

    For nights 2..N: the raw bytes of the night's new objects (all of them concatenated),
    the pack bytes actually written, and one zstd frame of those raw bytes at level 3 and
    19 -- alone, and with the raw tree objects of all earlier nights (the last 16 MiB) as
    a raw-content dictionary (what a store could get by compressing new records against
    the records it already holds, e.g. the previous versions or a per-course dictionary).
    """
    import zstandard

    out: dict[str, list[int]] = {
        k: [] for k in ("raw", "stored", "z3", "z19", "z3 + dict", "z19 + dict")
    }
    prior: list[bytes] = []
    for i, names in enumerate(night_packs):
        objs = [o for name in names for o in pack_objects(repo / "packs" / name)]
        raw = b"".join(b for _, b in objs)
        if i > 0:
            context = b"".join(prior)[-CONTEXT_DICT_BYTES:]
            dictionary = zstandard.ZstdCompressionDict(
                context, dict_type=zstandard.DICT_TYPE_RAWCONTENT
            )
            out["raw"].append(len(raw))
            out["stored"].append(sum((repo / "packs" / x).stat().st_size for x in names))
            for level in (3, 19):
                plain = zstandard.ZstdCompressor(level=level)
                with_dict = zstandard.ZstdCompressor(level=level, dict_data=dictionary)
                out[f"z{level}"].append(len(plain.compress(raw)))
                out[f"z{level} + dict"].append(len(with_dict.compress(raw)))
        prior += [b for t, b in objs if t == 2]
        if sum(map(len, prior)) > 2 * CONTEXT_DICT_BYTES:
            prior = [b"".join(prior)[-CONTEXT_DICT_BYTES:]]
    return out


BLOCK_WHATIF = ((3, 128 << 10), (3, 1 << 20), (3, 8 << 20), (19, 128 << 10), (19, 8 << 20))


def block_whatif(repo: Path, packs: list[str]) -> dict[str, Any]:
    """Night 1's tree objects (in pack order) compressed in blocks of other sizes/levels.

    The store compresses 128 KiB blocks at zstd-3; the floor compresses the whole tar at
    zstd-19.  Which of the two -- block size or level -- makes the first night's gap?
    """
    import zstandard

    trees = b"".join(b for name in packs for t, b in pack_objects(repo / "packs" / name) if t == 2)
    out: dict[str, Any] = {"raw": len(trees), "rows": []}
    for level, size in BLOCK_WHATIF:
        cctx = zstandard.ZstdCompressor(level=level)
        total = sum(len(cctx.compress(trees[i : i + size])) for i in range(0, len(trees), size))
        out["rows"].append({"level": level, "block": size, "bytes": total})
    return out


# ---------------------------------------------------------------- one data set


@dataclass
class Row:
    tool: str
    sizes: list[int] = field(default_factory=list)  # store bytes after each night
    seconds: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    cache_bytes: int | None = None
    error: str | None = None

    def growth(self) -> list[int]:
        return [b - a for a, b in zip([0, *self.sizes], self.sizes, strict=False)]


def nights_for(ds: DataSet, nights: int, workdir: Path, keep: bool) -> list[dict[str, Any]]:
    """Generate (or, with --keep, reuse) night-01..NN.mbz; returns the generator's stats."""
    folder = workdir / ds.name / "nights"
    stats_file = folder / "gen.jsonl"
    wanted = [folder / f"night-{n:02d}.mbz" for n in range(1, nights + 1)]
    if keep and all(p.exists() for p in wanted):
        print(f"[{ds.name}] reusing {nights} nights in {folder}", flush=True)
        if stats_file.exists():
            lines = [json.loads(x) for x in stats_file.read_text().splitlines() if x.strip()]
            return lines[:nights]
        return [{"night": n, "archive_bytes": p.stat().st_size} for n, p in enumerate(wanted, 1)]
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    argv = [sys.executable, str(GEN), "nights", "--out", str(folder), "--nights", str(nights)]
    argv += [*ds.gen_args(), "--seed", str(SEED)]
    print(f"[{ds.name}] generating: {shlex.join(argv)}", flush=True)
    started = time.monotonic()
    out = run(argv)
    stats_file.write_text(out)
    print(f"[{ds.name}] generated in {time.monotonic() - started:.0f} s", flush=True)
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def extract(mbz: Path, tree: Path) -> float:
    """Replace the folder's contents by the night's extracted archive; seconds taken."""
    started = time.perf_counter()
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    run(["tar", "-xzf", str(mbz), "-C", str(tree)])
    return time.perf_counter() - started


def run_set(
    ds: DataSet, nights: int, tools: list[str], workdir: Path, keep: bool
) -> dict[str, Any]:
    started = time.monotonic()
    load_before = os.getloadavg()
    live_before = fingerprint(live_source())
    gen = nights_for(ds, nights, workdir, keep)
    base = workdir / ds.name
    objs = {name: make_tool(name, base / name) for name in tools}
    rows = {name: Row(name) for name in tools}
    for name, tool in objs.items():
        try:
            tool.setup()
        except BenchError as exc:
            rows[name].error = str(exc)
    tree = base / "extracted" / "course"
    need_tree = any(t.source == "dir" for t in objs.values())
    extract_s: list[float] = []
    for n in range(1, nights + 1):
        mbz = base / "nights" / f"night-{n:02d}.mbz"
        if need_tree:
            extract_s.append(extract(mbz, tree))
        line = [f"[{ds.name}] night {n:2d}/{nights}"]
        for name, tool in objs.items():
            row = rows[name]
            if row.error:
                continue
            try:
                m = tool.night(n, mbz, tree)
                row.sizes.append(tool.store_bytes())
                row.seconds.append(m.seconds)
                row.rss_kb.append(m.rss_kb)
                row.cpu_s.append(m.cpu_s)
                line.append(f"{name} {m.seconds:.1f}s +{row.growth()[-1]:,}")
            except BenchError as exc:
                row.error = f"night {n}: {exc}"
                line.append(f"{name} FAILED")
        print("  ".join(line), flush=True)
    for name, tool in objs.items():
        rows[name].cache_bytes = tool.cache_bytes()
    result: dict[str, Any] = {
        "name": ds.name,
        "title": ds.title,
        "kind": ds.kind,
        "nights": nights,
        "generator": shlex.join(
            [
                "gen_course.py",
                "nights",
                "--nights",
                str(nights),
                *ds.gen_args(),
                "--seed",
                str(SEED),
            ]
        ),
        "archive_bytes": [g.get("archive_bytes") for g in gen],
        "tar_bytes": [g.get("total_bytes") for g in gen],
        "rows": {k: asdict(v) for k, v in rows.items()},
        "extract_seconds": sum(extract_s),
        "workdir": str(base),
        "command": shlex.join([sys.executable, *sys.argv]),
        "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        "run_seconds": time.monotonic() - started,
        "loadavg": [list(load_before), list(os.getloadavg())],
        "source": {
            "frozen": dict(FROZEN),
            "live": [live_before, fingerprint(live_source())],
        },
    }
    floor = objs.get("floor")
    if isinstance(floor, FloorTool):
        result["floor_commands"] = floor.commands[:2]
    cv = objs.get("coursevault")
    if isinstance(cv, CoursevaultTool) and not rows["coursevault"].error:
        repo = cv.folder / "repo"
        result["coursevault"] = {
            "stats": cv.stats(),
            "parts": store_parts(repo),
            "parts_per_night": cv.parts,
            "ingests": cv.ingests,
        }
        try:
            result["coursevault"] |= {
                "anatomy": pack_anatomy(repo),
                "anatomy_later": pack_anatomy(repo, cv.night1_packs) if nights > 1 else None,
                "context": context_whatif(repo, cv.night_packs) if nights > 1 else None,
                "blocks": block_whatif(repo, cv.night_packs[0]) if cv.night_packs else None,
            }
        except Exception as exc:  # the format is young: report, do not lose the run
            result["coursevault"]["anatomy_error"] = f"{type(exc).__name__}: {exc}"
    return result


# ---------------------------------------------------------------- report


def _median(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _fmt_int(x: float | None) -> str:
    return "–" if x is None else f"{round(x):,}"


def _fmt_ratio(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}×"


def _rows(res: dict[str, Any]) -> dict[str, Row]:
    return {k: Row(**v) for k, v in res["rows"].items()}


def summary(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per tool: store, night-1 size, times, RSS, median growth over nights 2..N."""
    rows = _rows(res)
    floor = rows.get("floor")
    floor_ok = floor is not None and not floor.error and floor.sizes
    floor_total = floor.sizes[-1] if floor_ok and floor else None
    floor_med = _median(floor.growth()[1:]) if floor_ok and floor else None
    out: dict[str, dict[str, Any]] = {}
    for name in ROW_ORDER:
        row = rows.get(name)
        if row is None:
            continue
        g = row.growth()
        med = _median(g[1:])
        timed = name != "mbz"
        out[name] = {
            "store": row.sizes[-1] if row.sizes else None,
            "night1": row.sizes[0] if row.sizes else None,
            "x_floor": row.sizes[-1] / floor_total if row.sizes and floor_total else None,
            "total_s": sum(row.seconds) if timed and row.seconds else None,
            "s_night": statistics.mean(row.seconds) if timed and row.seconds else None,
            "cpu_s_night": statistics.mean(row.cpu_s) if timed and row.cpu_s else None,
            "rss_mb": max(row.rss_kb) / 1024 if timed and row.rss_kb else None,
            "median_growth": med,
            "growth_x_floor": med / floor_med if med is not None and floor_med else None,
            "cache": row.cache_bytes,
            "nights_done": len(row.sizes),
            "error": row.error,
        }
    return out


def targets(res: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, passed) -- passed is None when a tool needed was not run."""
    rows = _rows(res)
    s = summary(res)
    full = res["nights"]

    def ok(name: str) -> bool:
        r = rows.get(name)
        return r is not None and not r.error and len(r.sizes) == full

    out: list[tuple[str, str, bool | None]] = []
    cv = s.get("coursevault", {})
    if res["kind"] == "small":
        if ok("coursevault") and ok("floor"):
            x = cv["x_floor"]
            out.append(("coursevault store ≤ 1.05× floor", f"{x:.3f}×", x <= 1.05))
        else:
            out.append(("coursevault store ≤ 1.05× floor", "not run", None))
        for other in ("restic-mbz", "borg-mbz"):
            what = f"coursevault ≥ 15× smaller than {LABELS[other]}"
            if ok("coursevault") and ok(other):
                f = s[other]["store"] / cv["store"]
                out.append((what, f"{f:.1f}×", f >= 15))
            else:
                out.append((what, "not run", None))
    else:
        if ok("coursevault") and ok("floor"):
            x = cv["night1"] / s["floor"]["night1"]
            out.append(("night 1: coursevault ≤ 1.25× floor", f"{x:.3f}×", x <= 1.25))
            gc, gf = rows["coursevault"].growth()[1:], rows["floor"].growth()[1:]
            ratios = [a / b if b else float("inf") for a, b in zip(gc, gf, strict=True)]
            worst = max(ratios) if ratios else 0.0
            med = statistics.median(ratios) if ratios else 0.0
            out.append(
                (
                    "every later night: growth ≤ 1.5× floor delta",
                    f"worst {worst:.2f}× (night {ratios.index(worst) + 2}), median {med:.2f}×",
                    worst <= 1.5,
                )
            )
        else:
            out.append(("night 1 ≤ 1.25× floor; growth ≤ 1.5× floor delta", "not run", None))
        for other in ("restic-dir", "borg-dir"):
            what = f"every later night: growth ≥ 30× less than {LABELS[other]}"
            if ok("coursevault") and ok(other):
                go, gc = rows[other].growth()[1:], rows["coursevault"].growth()[1:]
                fs = [a / b if b > 0 else float("inf") for a, b in zip(go, gc, strict=True)]
                worst = min(fs) if fs else 0.0
                out.append(
                    (
                        what,
                        f"worst {worst:.1f}× (night {fs.index(worst) + 2}), median {statistics.median(fs):.1f}×",
                        worst >= 30,
                    )
                )
            else:
                out.append((what, "not run", None))
    what = "coursevault s/night ≤ restic's on the same .mbz files"
    if ok("coursevault") and ok("restic-mbz"):
        a, b = cv["s_night"], s["restic-mbz"]["s_night"]
        ca, cb = cv["cpu_s_night"], s["restic-mbz"]["cpu_s_night"]
        cpu = f" (CPU {ca:.2f} s vs {cb:.2f} s)" if ca is not None and cb is not None else ""
        out.append((what, f"wall {a:.2f} s vs {b:.2f} s{cpu}", a <= b))
    else:
        out.append((what, "not run", None))
    return out


def render_set(res: dict[str, Any]) -> str:
    s = summary(res)
    n = res["nights"]
    lines = [
        f"## {res['title']} ({n} nights)",
        "",
        f"Command: `{res['command']}`  ",
        f"Nights: `{res['generator']}` in `{res['workdir']}/nights`; .mbz "
        f"{_fmt_int(res['archive_bytes'][0])} → {_fmt_int(res['archive_bytes'][-1])} bytes, "
        f"tar {_fmt_int(res['tar_bytes'][0])} → {_fmt_int(res['tar_bytes'][-1])} bytes.  ",
        f"Finished {res['finished']}, whole data set {res['run_seconds']:.0f} s "
        f"(extracting the folder each night: {res['extract_seconds']:.1f} s in all, not counted "
        "as any tool's time).  "
        + (
            "Load average (1 min) at start / end: "
            f"{res['loadavg'][0][0]:.2f} / {res['loadavg'][1][0]:.2f} "
            f"on {os.cpu_count()} cores (the machine is shared: wall times are noisy; "
            "CPU s = user + system time from GNU time)."
            if res.get("loadavg")
            else ""
        )
        + source_note(res.get("source")),
        "",
        "| tool | store bytes | × floor | after night 1 | total s | s/night | CPU s/night "
        "| peak RSS MB | median nightly growth (n2..) | growth × floor Δ | local cache bytes |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, r in s.items():
        label = LABELS[name] + (f" (FAILED at {r['error'][:80]})" if r["error"] else "")
        total = "–" if r["total_s"] is None else f"{r['total_s']:.1f}"
        per = "–" if r["s_night"] is None else f"{r['s_night']:.2f}"
        rss = "–" if r["rss_mb"] is None else f"{r['rss_mb']:.0f}"
        cpu = "–" if r.get("cpu_s_night") is None else f"{r['cpu_s_night']:.2f}"
        lines.append(
            f"| {label} | {_fmt_int(r['store'])} | {_fmt_ratio(r['x_floor'])} | "
            f"{_fmt_int(r['night1'])} | {total} | {per} | {cpu} | {rss} | "
            f"{_fmt_int(r['median_growth'])} | {_fmt_ratio(r['growth_x_floor'])} | "
            f"{_fmt_int(r['cache'])} |"
        )
    lines += ["", "Targets:", ""]
    for what, measured, passed in targets(res):
        mark = {True: "PASS", False: "FAIL", None: "n/a"}[passed]
        lines.append(f"- **{mark}** {what}: {measured}")
    if res.get("floor_commands"):
        lines += ["", "Floor commands (night 1, night 2):", ""]
        lines += [f"    {c}" for c in res["floor_commands"]]
    rows = _rows(res)
    names = [x for x in ROW_ORDER if x in rows]
    lines += [
        "",
        "<details><summary>Store growth per night (bytes)</summary>",
        "",
        "| night | "
        + " | ".join(names)
        + (" | cv ÷ floor |" if {"coursevault", "floor"} <= set(names) else ""),
        "|--:|" + "--:|" * (len(names) + ({"coursevault", "floor"} <= set(names))),
    ]
    growth = {k: rows[k].growth() for k in names}
    for i in range(n):
        cells = [_fmt_int(growth[k][i]) if i < len(growth[k]) else "–" for k in names]
        extra = ""
        if {"coursevault", "floor"} <= set(names):
            gc, gf = growth["coursevault"], growth["floor"]
            extra = f" {gc[i] / gf[i]:.2f}× |" if i < min(len(gc), len(gf)) and gf[i] else " – |"
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |" + extra)
    lines += ["", "</details>", ""]
    if "coursevault" in res:
        lines += render_breakdown(res)
    return "\n".join(lines)


def source_note(source: dict[str, Any] | None) -> str:
    if not source:
        return ""
    frozen, live = source.get("frozen") or {}, source.get("live") or ["?", "?"]
    changed = "changed during the run" if live[0] != live[1] else "unchanged during the run"
    if not frozen:
        return f"  coursevault: live source {live[0]} → {live[1]} ({changed})."
    return (
        f"  coursevault: run from a frozen copy of `{frozen.get('live', '?')}`, fingerprint "
        f"{frozen['fingerprint']} (`{frozen['version']}`), checked {frozen['taken']}; the "
        f"live source tree went {live[0]} → {live[1]} ({changed})."
    )


def render_breakdown(res: dict[str, Any]) -> list[str]:
    cv = res["coursevault"]
    parts, an, per = cv["parts"], cv.get("anatomy"), cv["parts_per_night"]
    total = parts["du -sb"]
    keys = ["packs", "index", "snapshots", "other files", "directory entries"]

    def pct(x: float) -> str:
        return f"{100 * x / total:.1f}%" if total else "–"

    med_growth = {}
    for k in keys:
        vals = [b[k] - a[k] for a, b in itertools.pairwise(per)]
        med_growth[k] = _median(vals)
    lines = [
        f"### Where coursevault's {_fmt_int(total)} bytes go ({res['nights']} nights)",
        "",
        "| part | files | bytes | share of du | median growth per night (n2..) |",
        "|---|--:|--:|--:|--:|",
    ]
    for k in keys:
        files = parts.get(k + " (files)", "")
        lines.append(
            f"| {k} | {files} | {_fmt_int(parts[k])} | {pct(parts[k])} | {_fmt_int(med_growth[k])} |"
        )
    lines.append(
        f"| **du -sb** | | **{_fmt_int(total)}** | 100% | {_fmt_int(_median([b['du -sb'] - a['du -sb'] for a, b in itertools.pairwise(per)]))} |"
    )
    tail = [
        "",
        "Per night, from `ingest --json` (nights 2..N, median): "
        + ", ".join(
            f"{k} {_fmt_int(_median([float(x.get(k, 0)) for x in cv['ingests'][1:]]))}"
            for k in ("new_objects", "new_bytes", "stored_bytes")
        )
        + ".",
        "",
        *render_context(res),
        *render_blocks(res),
        "`coursevault stats -r REPO --json`:",
        "",
        "    " + json.dumps(cv["stats"]),
        "",
    ]
    if not an:
        return [*lines, "", f"Pack anatomy failed: {cv.get('anatomy_error')}", *tail]
    later = cv.get("anatomy_later")
    n_later = max(res["nights"] - 1, 1)
    head = "| what | objects | raw bytes | stored bytes | share of du |"
    rule = "|---|--:|--:|--:|--:|"
    if later:
        head += " objects, n2.. | raw, n2.. | stored, n2.. | stored per night, n2.. |"
        rule += "--:|--:|--:|--:|"
    lines += [
        "",
        "Inside the packs (decoded with coursevault.store's own readers): all packs, and (n2..) only the packs written "
        "by nights 2..N.  A block's stored bytes are shared among its objects in proportion "
        "to their raw length, hence ≈; raw tree bytes split into child ids (32 B each, plus "
        "the count) and body.",
        "",
        head,
        rule,
    ]
    later_rows = {label: (o, r, st) for label, o, r, st in pack_rows(later)} if later else {}
    for label, objects, raw, stored in pack_rows(an):
        line = f"| {label} | {_fmt_int(objects)} | {_fmt_int(raw)} | {_fmt_int(stored)} | {pct(stored)} |"
        if later:
            o2, r2, s2 = later_rows.get(label, (None, None, None))
            per_night = None if s2 is None else s2 / n_later
            line += f" {_fmt_int(o2)} | {_fmt_int(r2)} | {_fmt_int(s2)} | {_fmt_int(per_night)} |"
        lines.append(line)
    ix = an["index"]
    per_entry = ix["bytes"] / ix["entries"] if ix["entries"] else 0
    lines += [
        "",
        f"Index files: {ix['files']} files, {_fmt_int(ix['bytes'])} bytes, {_fmt_int(ix['entries'])} "
        f"entries ({ix['unique_ids']:,} distinct ids; {per_entry:.1f} B per entry incl. headers), "
        f"{ix['pack_refs']} pack references.",
        "",
        "Per-object bookkeeping: pack entry tables "
        f"{_fmt_int(an['entry_tables'])} + index files {_fmt_int(ix['bytes'])} = "
        f"{_fmt_int(an['entry_tables'] + ix['bytes'])} bytes "
        f"({pct(an['entry_tables'] + ix['bytes'])} of the store, "
        f"{(an['entry_tables'] + ix['bytes']) / max(an['objects'], 1):.1f} B per object), "
        "against "
        f"{an['payload_stored'] / max(an['objects'], 1):.0f} B of compressed payload per "
        "object; the trees' child-id lists hold another "
        f"{_fmt_int(sum(v['child ids'] for v in an['tree_kinds'].values()))} raw bytes "
        "(32 B per reference, see the table).",
        *tail,
    ]
    return lines


def render_context(res: dict[str, Any]) -> list[str]:
    ctx = res["coursevault"].get("context")
    if not ctx or not ctx["raw"]:
        return []
    floor = _rows(res).get("floor")
    floor_med = _median(floor.growth()[1:]) if floor and floor.sizes else None
    labels = {
        "raw": "raw bytes of the night's new objects",
        "stored": "pack bytes written (as stored, with block headers and entry tables)",
        "z3": "one zstd-3 frame, no context",
        "z19": "one zstd-19 frame, no context",
        "z3 + dict": "zstd-3, earlier nights' tree objects as dictionary",
        "z19 + dict": "zstd-19, earlier nights' tree objects as dictionary",
    }
    lines = [
        "What-if: compression context for the new objects of nights 2..N (median per night; "
        "the dictionary is the raw tree objects of all earlier nights, last 16 MiB):",
        "",
        "| new objects of a night, as | median bytes | × floor's median Δ |",
        "|---|--:|--:|",
    ]
    for key, label in labels.items():
        med = _median(ctx[key])
        ratio = med / floor_med if med is not None and floor_med else None
        lines.append(f"| {label} | {_fmt_int(med)} | {_fmt_ratio(ratio)} |")
    lines.append("")
    return lines


def render_blocks(res: dict[str, Any]) -> list[str]:
    bw = res["coursevault"].get("blocks")
    if not bw or not bw["raw"]:
        return []
    lines = [
        f"What-if: night 1's tree objects ({_fmt_int(bw['raw'])} raw bytes, in pack order) "
        "compressed in independent blocks of another size or level (the store uses 128 KiB "
        "at the config's zstd level):",
        "",
        "| zstd level | block | bytes | ratio |",
        "|--:|--:|--:|--:|",
    ]
    for row in bw["rows"]:
        size = row["block"]
        label = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
        ratio = bw["raw"] / row["bytes"] if row["bytes"] else 0.0
        lines.append(f"| {row['level']} | {label} | {_fmt_int(row['bytes'])} | {ratio:.2f}× |")
    lines.append("")
    return lines


KIND_NAMES = {
    "A": "archive",
    "M": "member",
    "D": "document",
    "X": "element record",
    "L": "list chunk",
    "C": "chunked content",
}


def pack_rows(an: dict[str, Any]) -> list[tuple[str, float | None, float | None, float]]:
    """(label, objects, raw bytes, stored bytes) rows of one pack anatomy."""
    rows: list[tuple[str, float | None, float | None, float]] = [
        ("pack files (sum)", an["packs"], None, an["pack_file_bytes"]),
        ("· pack headers", an["packs"], None, an["pack_headers"]),
        (
            f"· block headers ({an.get('block_head_size', 14)} B each)",
            an["blocks"],
            None,
            an["block_headers"],
        ),
        (
            "· blocks: zstd (objects column) / raw (raw column)",
            an["blocks_zstd"],
            an["blocks_raw"],
            0,
        ),
        (
            f"· entry tables ({an.get('entry_size', 41)} B per object, uncompressed)",
            an["objects"],
            None,
            an["entry_tables"],
        ),
        ("· payload, all objects", an["objects"], an["payload_raw"], an["payload_stored"]),
    ]
    for t, v in sorted(an["types"].items()):
        rows.append((f"· · {t} objects", v["objects"], v["raw"], v["stored≈"]))
    mt = an["mtimes_blobs"]
    rows.append(("· · · of which member-mtimes blobs", mt["objects"], mt["raw"], mt["stored≈"]))
    for k, v in an["tree_kinds"].items():
        name = f"· · · tree `{k}` {KIND_NAMES.get(k, '')}"
        rows.append((name, v["objects"], v["raw"], v["stored≈"]))
        rows.append((name + ": child ids", None, v["child ids"], v["child ids"] * _share(v)))
        rows.append((name + ": body", None, v["body"], v["body"] * _share(v)))
    dup = an.get("duplicates", {"objects": 0, "raw": 0, "stored≈": 0.0})
    rows.append(
        ("· objects stored twice (extra copies)", dup["objects"], dup["raw"], dup["stored≈"])
    )
    return rows


def _share(v: dict[str, float]) -> float:
    return v["stored≈"] / v["raw"] if v["raw"] else 0.0


def tool_versions() -> dict[str, str]:
    def first(argv: list[str]) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, check=False)
        except OSError:
            return "not installed"
        text = (p.stdout + p.stderr).strip().splitlines()
        return text[0].strip() if text else "?"

    return {
        "restic": first(["restic", "version"]),
        "borg": first(["borg", "--version"]),
        "xdelta3": first(["xdelta3", "-V"]),
        "zstd": first(["zstd", "-V"]),
        "gzip": first(["gzip", "--version"]),
        "coursevault": FROZEN.get("version") or first([coursevault_bin(), "version"]),
        "python": sys.version.split()[0],
    }


def render_report(sets: dict[str, Any], env: dict[str, Any]) -> str:
    versions = env["versions"]
    lines = [
        "# Dedup benchmark: 30 nights of a course (benchmarks/dedup_bench.py)",
        "",
        f"CPU: {env['cpu']} ({env['cores']} cores), {env['platform']}.  ",
        "Tools: " + "; ".join(f"{k}: `{v}`" for k, v in versions.items()) + ".",
        "",
        "Store bytes = `du -sb` of the repository folder (caches apart); × floor = store ÷ "
        "the floor's total; time = wall time of the nightly commands (not `init`, not the "
        "folder extraction); peak RSS = max over the nights' processes (GNU time -v); "
        "median nightly growth = median over nights 2..N of the store's growth, and its "
        "ratio to the floor's median delta.",
        "",
    ]
    for name in [*DATASETS, *sorted(set(sets) - set(DATASETS))]:
        if name in sets:
            lines += [render_set(sets[name]), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_list(text: str, groups: dict[str, list[str]], singles: Sequence[str]) -> list[str]:
    out: list[str] = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        names = groups.get(item) or ([item] if item in singles else None)
        if names is None:
            raise SystemExit(f"unknown name {item!r}; choose from {sorted({*groups, *singles})}")
        out += [x for x in names if x not in out]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--sets", default="small,big", help="small,big or sample24,simplecert,big (default both)"
    )
    parser.add_argument("--nights", type=int, help="override the nights per data set (30/30/10)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cv-dedup"))
    parser.add_argument("--keep", action="store_true", help="reuse nights generated before")
    parser.add_argument(
        "--tools",
        default="mbz,restic,borg,coursevault,floor",
        help="subset of mbz,restic,borg,coursevault,floor (restic-mbz etc. also accepted)",
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/dedup-bench-results.md"))
    parser.add_argument(
        "--fresh", action="store_true", help="drop data sets of earlier runs from the report"
    )
    parser.add_argument(
        "--source",
        type=Path,
        help="folder holding the coursevault package to run (e.g. an earlier "
        "WORKDIR/frozen-src/<fingerprint>), so that data sets run one at a time use the same code",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="run coursevault from the live source tree instead of a frozen copy of it",
    )
    args = parser.parse_args(argv)
    sets = parse_list(args.sets, SET_GROUPS, list(DATASETS))
    singles = [x for names in TOOL_GROUPS.values() for x in names]
    chosen = parse_list(args.tools, TOOL_GROUPS, singles)
    tools = [x for x in ROW_ORDER if x in chosen]
    if not Path(GNU_TIME).exists():
        raise SystemExit(f"{GNU_TIME} (GNU time) is needed: apt-get install time")
    needed = {"restic": "restic", "borg": "borg", "floor": "xdelta3"}
    for tool in tools:
        exe = needed.get(tool.split("-")[0])
        if exe and shutil.which(exe) is None:
            raise SystemExit(
                f"{exe} is not installed: apt-get install restic borgbackup xdelta3 zstd"
            )
    if "coursevault" in tools and not args.live:
        frozen = freeze_source(args.workdir, source=args.source)
        print(f"coursevault: frozen copy {frozen['fingerprint']} in {frozen['path']}", flush=True)
    env = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "versions": tool_versions(),
    }
    sidecar = args.out.with_suffix(".json")
    saved: dict[str, Any] = {}
    if sidecar.exists() and not args.fresh:
        try:
            saved = dict(json.loads(sidecar.read_text()).get("sets", {}))
        except (ValueError, AttributeError):
            saved = {}
    for name in sets:
        ds = DATASETS[name]
        res = run_set(ds, args.nights or ds.nights, tools, args.workdir, args.keep)
        saved[name] = res
        print()
        print(render_set(res), flush=True)
        sidecar.write_text(json.dumps({"env": env, "sets": saved}, indent=1))
        args.out.write_text(render_report(saved, env))
        print(f"[{name}] report: {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
