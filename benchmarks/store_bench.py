"""How fast is the object store, and is hashing or compression what limits it?

The store (``coursevault.store``) must keep up with nightly backups of big Moodle
courses: hundreds of thousands of ~1 KiB XML records and a few large files.  This
benchmark measures, in one run, on one core (the process pins itself to one CPU):

* write throughput through ``Repository.writer()`` -- ``put`` plus ``commit`` (pack
  files, index files, catalog rows, every fsync) -- for 1 KiB objects (objects/s,
  target >= 20,000/s) and for 4 MiB objects (MB/s, target >= 150 MB/s);
* read throughput through ``Repository.get`` (which verifies every object's hash):
  1 KiB objects in write order and in random order (objects/s), 4 MiB objects (MB/s);
* ``Repository.has`` one id at a time and ``Catalog.has_many`` in a batch over a
  shuffled list of ids of which half were written and half are random (lookups/s);
* the raw speed of the building blocks on exactly the same payloads in the same run:
  blake3 per object, zstd level 3 on the store's block layout (128 KiB blocks of
  small objects, one frame per 4 MiB object) and its decompression, fsync'd file
  writes of the store's pack sizes, SQLite inserts and point queries, and a Python
  set as the in-memory bound for lookups.

Each store row says what share of the store's time the building blocks would take
on their own (for example "blake3 9% · zstd 41%"): a small share means the cost is
in the store's own code (Python, catalog, I/O pattern), not in hashing or
compression.

Machines running other jobs make wall-clock numbers noisy, so every interval is
also measured as "own time": wall time minus the time the process was ready to run
but waited for its core (run-queue wait from /proc/self/schedstat).  Values are
reported both ways; raw speeds and shares use own time, so the comparison holds
even when the load changes during the run.  Disk waits (fsync) stay in own time.

Payloads: 1 KiB objects are XML records exactly 1,024 bytes long, shaped like a
Moodle backup's forum posts (85%) and standard-log entries (15%), with prose from a
Zipf-weighted pseudo-word vocabulary, so 128 KiB blocks of them compress ~3.9x like
real records (neither random bytes nor repeated text).  4 MiB objects are half
compressible text (4,096 such records in a row, like a big ``forum.xml``) and half
random bytes (like PDFs and images), reported separately.  Everything is seeded.

Repositories live in a temporary directory under /tmp, removed at the end.  The
garbage collector stays enabled (as in real use).  MB = 10^6 bytes, MiB = 2^20.
The report names the store's source by a hash of ``coursevault/store/*.py``, so
numbers can be tied to the code they measured.

    .venv/bin/python benchmarks/store_bench.py            # full run, < 4 min (~2 idle)
    .venv/bin/python benchmarks/store_bench.py --quick    # smoke run, < 20 s
    .venv/bin/python benchmarks/store_bench.py --profile  # + cProfile of store phases
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import os
import platform
import pstats
import random
import shlex
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import blake3
import sqlalchemy
import zstandard
from machine import cpu_model

import coursevault.store
from coursevault.store.backend import LocalBackend
from coursevault.store.ids import ObjectId, ObjectType
from coursevault.store.repository import (
    BLOCK_CACHE,
    DEFAULT_BLOCK_SIZE,
    DEFAULT_LEVEL,
    DEFAULT_PACK_SIZE,
    Repository,
    WriteSession,
    WriteStats,
)

T = TypeVar("T")

KIB = 1024
MIB = 1024 * KIB
MB = 1_000_000
SMALL_SIZE = 1 * KIB
LARGE_SIZE = 4 * MIB
DEFAULT_OUTPUT = Path("/tmp/store-bench-results.md")
SMALL_TARGET = 20_000  # objects/s
LARGE_TARGET = 150  # MB/s


@dataclass(frozen=True)
class Settings:
    small: int  # 1 KiB objects written (and read in write order)
    large: int  # 4 MiB objects of each kind (text, random)
    random_reads: int  # 1 KiB objects read in random order
    absent: int  # random ids added to the written ones for the has test
    raw_lookups: int  # of those, how many raw SQLite lookups are timed on (for the rate)
    pool_words: int  # words of prose the records draw from
    raw_min_s: float  # raw building blocks: repeat passes until this much time was spent
    seed: int


FULL = Settings(500_000, 64, 5_000, 500_000, 250_000, 1_500_000, 0.5, 20240601)
QUICK = Settings(20_000, 4, 2_000, 20_000, 40_000, 600_000, 0.1, 20240601)


# --------------------------------------------------------------------------- payloads

FUNCTION_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "that",
    "it",
    "for",
    "you",
    "was",
    "with",
    "on",
    "as",
    "have",
    "but",
    "be",
    "not",
    "this",
    "are",
    "I",
    "we",
    "they",
    "can",
    "do",
    "if",
    "what",
    "so",
    "at",
    "by",
    "or",
    "from",
    "an",
    "my",
    "all",
    "would",
    "there",
    "will",
    "about",
    "one",
    "which",
    "their",
    "your",
    "when",
    "more",
    "also",
    "just",
    "like",
    "some",
    "think",
    "them",
    "how",
    "then",
    "only",
    "other",
]
ONSETS = "b bl br c ch cl cr d dr f fl fr g gl gr h j k l m n p pl pr qu r s sc sh sl sp st t th"
ONSETS += " tr v w y z"
NUCLEI = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "ie", "oa", "ou", "y"]
CODAS = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "nt", "st", "ng", "ck", "rd", "th"]
SUFFIXES = ["", "", "", "", "", "s", "ed", "ing", "ly", "tion", "ment", "er", "able", "ness"]
LOG_EVENTS = (
    (
        "\\mod_forum\\event\\course_module_viewed",
        "mod_forum",
        "viewed",
        "course_module",
        "forum",
        "r",
        2,
    ),
    ("\\core\\event\\course_viewed", "core", "viewed", "course", "", "r", 2),
    ("\\mod_forum\\event\\post_created", "mod_forum", "created", "post", "forum_posts", "c", 2),
    (
        "\\mod_assign\\event\\submission_status_viewed",
        "mod_assign",
        "viewed",
        "submission_status",
        "assign",
        "r",
        2,
    ),
    ("\\core\\event\\user_graded", "core", "graded", "user", "grade_grades", "u", 1),
)
POST_TAIL = (
    "&lt;/p&gt;</message>\n          <messageformat>1</messageformat>\n"
    "          <messagetrust>0</messagetrust>\n          <attachment></attachment>\n"
    "          <totalscore>0</totalscore>\n          <mailnow>0</mailnow>\n"
    "          <ratings>\n          </ratings>\n        </post>"
)


def prose_pool(rng: random.Random, n_words: int, vocab_size: int = 8000) -> str:
    """English-like prose without markup characters: a Zipf-weighted vocabulary of
    pseudo-words (function words most frequent), sentences of varied length."""
    onsets = ONSETS.split()
    pseudo: dict[str, None] = {}  # insertion-ordered, so the result depends on the seed only
    while len(pseudo) < vocab_size:
        n = rng.choices((1, 2, 3, 4), weights=(30, 40, 22, 8))[0]
        syl = (rng.choice(onsets) + rng.choice(NUCLEI) + rng.choice(CODAS) for _ in range(n))
        pseudo["".join(syl) + rng.choice(SUFFIXES)] = None
    vocab = FUNCTION_WORDS + sorted(pseudo, key=lambda w: (len(w) + rng.random() * 6, w))
    cum = list(itertools.accumulate(1 / (r + 2) for r in range(len(vocab))))
    words = rng.choices(vocab, cum_weights=cum, k=n_words)
    sentences: list[str] = []
    i = 0
    while i < n_words:
        k = 4 + int(rng.expovariate(1 / 10))
        s = " ".join(words[i : i + k])
        i += k
        sentences.append(s[0].upper() + s[1:] + rng.choice(".......?!,"))
    return " ".join(sentences)


class RecordMaker:
    """Moodle-backup-like XML records of exactly ``SMALL_SIZE`` bytes, all distinct."""

    def __init__(self, rng: random.Random, pool_words: int) -> None:
        self.rng = rng
        self.pool = prose_pool(rng, pool_words)
        self.users = list(range(2, 402))
        self.user_cum = list(itertools.accumulate(1 / (r + 1) ** 0.8 for r in range(400)))
        self.cursor: int | None = None

    def _text(self, n: int) -> str:
        if self.cursor is None:  # a random place: neighbours in a block share no text
            start = self.rng.randrange(len(self.pool) - n)
        else:  # consecutive text: a long document never repeats itself
            start = self.cursor if self.cursor + n <= len(self.pool) else 0
            self.cursor = start + n
        return self.pool[start : start + n]

    def _fill(self, head: str, tail: str) -> bytes:
        data = (head + self._text(SMALL_SIZE - len(head) - len(tail)) + tail).encode()
        assert len(data) == SMALL_SIZE
        return data

    def post(self, i: int) -> bytes:
        rng = self.rng
        t = 1_600_000_000 + i * 97 + rng.randrange(90)
        modified = t + (rng.randrange(3000) if rng.random() < 0.2 else 0)
        userid = rng.choices(self.users, cum_weights=self.user_cum)[0]
        subject = self._text(rng.randint(15, 50)).strip()
        head = (
            f'<post id="{i}">\n          <parent>{max(0, i - rng.randint(1, 30))}</parent>\n'
            f"          <userid>{userid}</userid>\n          <created>{t}</created>\n"
            f"          <modified>{modified}</modified>\n"
            f"          <mailed>1</mailed>\n          <subject>Re: {subject}</subject>\n"
            f"          <message>&lt;p&gt;"
        )
        return self._fill(head, POST_TAIL)

    def log(self, i: int) -> bytes:
        rng = self.rng
        name, component, action, target, table, crud, edulevel = rng.choice(LOG_EVENTS)
        t = 1_600_000_000 + i * 97 + rng.randrange(90)
        userid = rng.choices(self.users, cum_weights=self.user_cum)[0]
        head = (
            f'<logstore_standard_log id="{i}">\n    <eventname>{name}</eventname>\n'
            f"    <component>{component}</component>\n    <action>{action}</action>\n"
            f"    <target>{target}</target>\n    <objecttable>{table}</objecttable>\n"
            f"    <objectid>{rng.randrange(1, 90000)}</objectid>\n    <crud>{crud}</crud>\n"
            f"    <edulevel>{edulevel}</edulevel>\n"
            f"    <contextid>{rng.randrange(20, 400)}</contextid>\n"
            f"    <contextlevel>70</contextlevel>\n"
            f"    <contextinstanceid>{rng.randrange(1, 300)}</contextinstanceid>\n"
            f"    <userid>{userid}</userid>\n    <courseid>42</courseid>\n"
            f"    <relateduserid>$@NULL@$</relateduserid>\n    <anonymous>0</anonymous>\n"
            f'    <other>{{"discussionid":{rng.randrange(1, 5000)},'
            f'"forumid":{rng.randrange(1, 40)},"forumtype":"general","text":"'
        )
        ip = ".".join(str(rng.randrange(256)) for _ in range(3))
        tail = (
            f'"}}</other>\n    <timecreated>{t}</timecreated>\n    <origin>web</origin>\n'
            f"    <ip>10.{ip}</ip>\n    <realuserid>$@NULL@$</realuserid>\n"
            "  </logstore_standard_log>"
        )
        return self._fill(head, tail)

    def records(self, first_id: int, n: int, *, consecutive: bool = False) -> list[bytes]:
        """``n`` records; ``consecutive`` draws their prose from one running place in
        the pool (for 4 MiB documents, whose zstd window would otherwise find repeats)."""
        rng = self.rng
        self.cursor = rng.randrange(len(self.pool)) if consecutive else None
        out = [
            self.post(i) if rng.random() < 0.85 else self.log(i)
            for i in range(first_id, first_id + n)
        ]
        self.cursor = None
        return out


# --------------------------------------------------------------------------- timing


def _sched() -> tuple[float, float]:
    """(seconds on a CPU, seconds waiting in the run queue) of this thread so far."""
    try:
        with open("/proc/self/schedstat") as f:
            run_ns, wait_ns, _slices = f.read().split()
        return int(run_ns) / 1e9, int(wait_ns) / 1e9
    except (OSError, ValueError):
        return time.process_time(), 0.0


@dataclass(frozen=True)
class Timing:
    """One measured interval.  ``own`` leaves out the time this process was ready to
    run but another process had the core (other jobs on a shared machine), so it
    estimates the time on an idle core; disk waits (fsync) stay in."""

    wall: float
    cpu: float
    runq: float

    @property
    def own(self) -> float:
        return max(self.wall - self.runq, 1e-9)

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.wall + other.wall, self.cpu + other.cpu, self.runq + other.runq)


def timed(fn: Callable[[], T]) -> tuple[Timing, T]:
    cpu0, q0 = _sched()
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    cpu1, q1 = _sched()
    return Timing(wall, cpu1 - cpu0, q1 - q0), result


class Phases:
    """Times store phases (after a gc.collect); profiles them with ``--profile``."""

    def __init__(self, profile: bool) -> None:
        self.profile = profile
        self.profiles: list[tuple[str, float, cProfile.Profile]] = []
        self.total = Timing(0.0, 0.0, 0.0)

    def run(self, name: str, fn: Callable[[], T]) -> tuple[Timing, T]:
        progress(f"{name} ...")
        gc.collect()
        if self.profile:
            prof = cProfile.Profile()
            t, result = timed(lambda: prof.runcall(fn))
            self.profiles.append((name, t.wall, prof))
        else:
            t, result = timed(fn)
        self.total += t
        progress(f"{name}: {t.wall:.2f} s wall, {t.own:.2f} s own, {t.cpu:.2f} s CPU")
        return t, result


def best_pass(fn: Callable[[], object], min_total: float, max_runs: int = 5) -> float:
    """Own seconds of the fastest of repeated passes of ``fn`` (repeated until
    ``min_total`` seconds were spent, at most ``max_runs`` times)."""
    gc.collect()
    best = total = timed(fn)[0].own
    runs = 1
    while total < min_total and runs < max_runs:
        secs = timed(fn)[0].own
        best = min(best, secs)
        total += secs
        runs += 1
    return best


def progress(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- raw blocks
# Each returns the own seconds of one pass of a building block over the given data.


def raw_blake3(payloads: Sequence[bytes], min_s: float) -> float:
    """One blake3 digest per object, as ``object_id`` computes for every put and get."""
    digest = blake3.blake3

    def one() -> None:
        for p in payloads:
            digest(p).digest()

    return best_pass(one, min_s)


def raw_zstd(blocks: Sequence[bytes], level: int, min_s: float) -> tuple[float, float, list[bytes]]:
    """Compress each block as one frame (as PackWriter does), then decompress the
    frames that shrank (the store keeps the others raw).  Returns both times and the
    frames (``b""`` for a block the store would keep raw)."""
    cctx = zstandard.ZstdCompressor(level=level)
    dctx = zstandard.ZstdDecompressor()
    frames: list[bytes] = []

    def compress() -> None:
        frames.clear()
        frames.extend(cctx.compress(b) for b in blocks)

    def decompress() -> None:
        for frame in frames:
            if frame:
                dctx.decompress(frame)

    c = best_pass(compress, min_s)
    frames[:] = [f if len(f) < len(b) else b"" for f, b in zip(frames, blocks, strict=True)]
    return c, best_pass(decompress, min_s), frames


def small_blocks(payloads: Sequence[bytes], block_size: int) -> list[bytes]:
    """The store's layout: objects concatenated in order into blocks of ``block_size``."""
    per_block = max(1, block_size // SMALL_SIZE)
    return [b"".join(payloads[i : i + per_block]) for i in range(0, len(payloads), per_block)]


def raw_file_writes(directory: Path, sizes: Sequence[int]) -> float:
    """Write files of the given sizes as LocalBackend does (write, fsync, rename, fsync
    the directory) with no store code around."""
    directory.mkdir(parents=True, exist_ok=True)
    buf = random.Random(1).randbytes(max(sizes, default=0))
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)

    def one() -> None:
        for i, size in enumerate(sizes):
            tmp = directory / f".tmp-{i}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            view = memoryview(buf)[:size]
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            os.close(fd)
            os.replace(tmp, directory / f"f{i}")
            os.fsync(dfd)

    try:
        return timed(one)[0].own
    finally:
        os.close(dfd)
        shutil.rmtree(directory)


def raw_sqlite_insert(path: Path, ids: Sequence[bytes]) -> float:
    """Insert one catalog-like row per id into a fresh table shaped like cv_objects
    (WAL, synchronous=NORMAL, 20,000 rows per executemany, one commit)."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute(
            "CREATE TABLE t (id BLOB PRIMARY KEY, type INTEGER, pack BLOB, block_offset INTEGER,"
            " block_length INTEGER, offset INTEGER, length INTEGER) WITHOUT ROWID"
        )
        pack = bytes(32)
        rows = [
            (oid, 1, pack, i // 128 * 40_000, 40_000, i % 128 * SMALL_SIZE, SMALL_SIZE)
            for i, oid in enumerate(ids)
        ]

        def one() -> None:
            sql = "INSERT OR IGNORE INTO t VALUES (?, ?, ?, ?, ?, ?, ?)"
            for i in range(0, len(rows), 20_000):
                con.executemany(sql, rows[i : i + 20_000])
            con.commit()

        return timed(one)[0].own
    finally:
        con.close()


def raw_sqlite_lookups(db: str, ids: Sequence[bytes]) -> float:
    """Point queries on the catalog's own table through plain sqlite3, one cursor."""
    con = sqlite3.connect(db)
    try:
        cur = con.cursor()
        sql = "SELECT 1 FROM cv_objects WHERE id = ?"

        def one() -> None:
            for oid in ids:
                cur.execute(sql, (oid,))
                cur.fetchone()

        return timed(one)[0].own
    finally:
        con.close()


def raw_sqlite_batched(db: str, ids: Sequence[bytes], batch: int = 500) -> float:
    """``SELECT id ... WHERE id IN (?, ...)`` over ``batch`` ids at a time, plain sqlite3."""
    con = sqlite3.connect(db)
    try:
        cur = con.cursor()

        def one() -> None:
            for i in range(0, len(ids), batch):
                part = ids[i : i + batch]
                marks = ", ".join("?" * len(part))
                cur.execute(f"SELECT id FROM cv_objects WHERE id IN ({marks})", part)
                cur.fetchall()

        return timed(one)[0].own
    finally:
        con.close()


def raw_set_lookups(present: Sequence[bytes], ids: Sequence[bytes], min_s: float) -> float:
    table = set(present)

    def one() -> None:
        for oid in ids:
            oid in table  # noqa: B015

    return best_pass(one, min_s)


# --------------------------------------------------------------------------- store


class CountingBackend(LocalBackend):
    """LocalBackend counting reads, to know how many blocks a read phase decoded."""

    reads = 0

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self.reads += 1
        return super().read(key, offset, length)


@dataclass
class Written:
    ids: list[ObjectId]
    put: Timing
    commit: Timing
    stats: WriteStats
    pack_sizes: list[int]

    @property
    def total(self) -> Timing:
        return self.put + self.commit


def new_repo(root: Path, name: str) -> Repository:
    backend = CountingBackend(root / name)
    Repository.init(
        backend, pack_size=DEFAULT_PACK_SIZE, block_size=DEFAULT_BLOCK_SIZE, level=DEFAULT_LEVEL
    )
    return Repository.open(backend, cache_dir=root / "cache")


def store_write(phases: Phases, label: str, repo: Repository, payloads: Sequence[bytes]) -> Written:
    """One WriteSession: put every payload (timed with opening the session), then commit."""
    blob = ObjectType.BLOB

    def puts() -> tuple[WriteSession, list[ObjectId]]:
        w = repo.writer()
        put = w.put
        return w, [put(blob, p) for p in payloads]

    put_t, (session, ids) = phases.run(f"{label}: put", puts)
    commit_t, _ = phases.run(f"{label}: commit", session.commit)
    if session.stats.new_objects != len(payloads):
        raise SystemExit(
            f"{label}: {session.stats.new_objects} new objects, expected {len(payloads)}"
        )
    pack_sizes = [size for _key, size in repo.backend.list("packs/")]
    return Written(ids, put_t, commit_t, session.stats, pack_sizes)


def store_read(
    phases: Phases, label: str, repo: Repository, ids: Sequence[ObjectId]
) -> tuple[Timing, int]:
    """Time to get every id, and how many backend reads (blocks) that took."""
    backend = repo.backend
    assert isinstance(backend, CountingBackend)
    get = repo.get
    before = backend.reads

    def reads() -> None:
        for oid in ids:
            get(oid)

    t, _ = phases.run(label, reads)
    return t, backend.reads - before


def reopen(repo: Repository, root: Path) -> Repository:
    """A fresh Repository: empty block cache, as a new reader process would have."""
    repo.close()
    return Repository.open(repo.backend, cache_dir=root / "cache")


def check_sample(repo: Repository, ids: Sequence[ObjectId], payloads: Sequence[bytes]) -> None:
    for i in range(0, len(ids), max(1, len(ids) // 500)):
        kind, data = repo.get(ids[i])
        if kind != ObjectType.BLOB or data != payloads[i]:
            raise SystemExit(f"object {i} read back wrong")


# --------------------------------------------------------------------------- report


@dataclass
class Row:
    measure: str
    count: float  # objects, bytes or lookups, per the unit
    t: Timing
    unit: str  # "objects/s", "MB/s", "lookups/s"
    target: float | None = None
    raw: str = "—"
    share: str = "—"

    def rate(self, secs: float) -> float:
        return self.count / secs / (MB if self.unit == "MB/s" else 1)


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def verdict(row: Row) -> str:
    if row.target is None:
        return "—"
    wall, own = row.rate(row.t.wall), row.rate(row.t.own)
    if wall >= row.target:
        return f"≥ {row.target:,} ✅ met"
    if own >= row.target:
        return f"≥ {row.target:,} ❌ missed (met on own time)"
    return f"≥ {row.target:,} ❌ missed"


def shares(store_s: float, parts: Sequence[tuple[str, float]]) -> str:
    """What share of the store's own time each building block alone would take."""
    text = " · ".join(f"{name} {100 * s / store_s:.0f}%" for name, s in parts)
    rest = 100 * (1 - sum(s for _, s in parts) / store_s)
    return f"{text} · rest (store code) {max(0.0, rest):.0f}%"


def render_table(rows: Sequence[Row]) -> str:
    lines = [
        "| measure | value | unit | target | value on own time | raw building blocks, "
        "same data, same run (own time) | share of the store's own time the building "
        "blocks alone would take |",
        "|---|--:|---|---|--:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.measure} | {fmt(r.rate(r.t.wall))} | {r.unit} | {verdict(r)} "
            f"| {fmt(r.rate(r.t.own))} | {r.raw} | {r.share} |"
        )
    return "\n".join(lines)


def render_profiles(profiles: Sequence[tuple[str, float, cProfile.Profile]], top: int = 12) -> str:
    out: list[str] = []
    for name, secs, prof in profiles:
        entries = pstats.Stats(prof).stats  # type: ignore[attr-defined]
        total = sum(v[2] for v in entries.values()) or 1.0
        by_own = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
        out += [f"#### {name} ({secs:.2f} s under cProfile)", "", "```"]
        out.append(f"{'tottime%':>8} {'tottime':>8} {'cumtime':>8} {'calls':>9}  function")
        for (file, line, func), (_cc, nc, tt, ct, _callers) in by_own:
            where = func if file == "~" else f"{func} ({_short(file)}:{line})"
            out.append(f"{100 * tt / total:7.1f}% {tt:8.3f} {ct:8.3f} {nc:9d}  {where}")
        out += ["```", ""]
    return "\n".join(out)


def _short(path: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def store_source() -> str:
    """A fingerprint of the measured code: blake3 of the store package's sources."""
    folder = Path(coursevault.store.__file__).parent
    files = sorted(folder.glob("*.py"))
    h = blake3.blake3()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    newest = max(f.stat().st_mtime for f in files)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest))
    return f"{h.hexdigest()[:16]} ({len(files)} files in {folder}, newest modified {when})"


def _cpu_busy() -> dict[int, int]:
    """Busy clock ticks of every CPU so far (/proc/stat)."""
    busy: dict[int, int] = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *ticks = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                t = [int(x) for x in ticks]
                busy[int(name[3:])] = sum(t) - t[3] - t[4]  # all but idle and iowait
    return busy


def pin_one_core(cpu: int | None) -> str:
    """Pin this process to one CPU: ``cpu``, or the least busy one over a short look."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    allowed = sorted(os.sched_getaffinity(0))
    chosen = cpu
    if chosen is None:
        try:
            before = _cpu_busy()
            time.sleep(0.5)
            after = _cpu_busy()
            chosen = min(allowed, key=lambda c: after.get(c, 0) - before.get(c, 0))
        except (OSError, ValueError):
            chosen = allowed[0]
    os.sched_setaffinity(0, {chosen})
    how = "chosen" if cpu is not None else "the least busy at start"
    return f"pinned to CPU {chosen} ({how}) of {len(allowed)} allowed"


# --------------------------------------------------------------------------- main


def run(st: Settings, root: Path, phases: Phases) -> tuple[list[Row], list[str]]:
    rng = random.Random(st.seed)
    min_s = st.raw_min_s
    rows: list[Row] = []
    notes: list[str] = []

    # ---- payloads
    t0 = time.perf_counter()
    maker = RecordMaker(rng, st.pool_words)
    small = maker.records(0, st.small)
    progress(f"generated {st.small:,} records in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    large = {
        "text": [
            b"".join(maker.records(10**7 + k * 4096, LARGE_SIZE // SMALL_SIZE, consecutive=True))
            for k in range(st.large)
        ],
        "random": [rng.randbytes(LARGE_SIZE) for _ in range(st.large)],
    }
    progress(f"generated 2 x {st.large} large objects in {time.perf_counter() - t0:.1f} s")

    # ---- raw building blocks on the same payloads
    progress("raw building blocks ...")
    small_bytes = len(small) * SMALL_SIZE
    s_hash = raw_blake3(small, min_s)
    blocks = small_blocks(small, DEFAULT_BLOCK_SIZE)
    s_comp, s_decomp, s_frames = raw_zstd(blocks, DEFAULT_LEVEL, min_s)
    s_block_decomp = s_decomp / max(1, sum(1 for f in s_frames if f))
    s_ratio = small_bytes / sum(len(f) or len(b) for f, b in zip(s_frames, blocks, strict=True))
    del blocks, s_frames
    large_raw = {
        kind: (raw_blake3(objs, min_s), *raw_zstd(objs, DEFAULT_LEVEL, min_s))
        for kind, objs in large.items()
    }
    s_insert = raw_sqlite_insert(
        root / "raw-insert.sqlite", [blake3.blake3(p).digest() for p in small]
    )
    progress("raw building blocks done")

    # ---- 1 KiB objects: write, read in order, read in random order
    repo = new_repo(root, "small")
    w = store_write(phases, f"write {st.small:,} x 1 KiB", repo, small)
    file_s = raw_file_writes(root / "raw-files", w.pack_sizes)
    pack_bytes = sum(w.pack_sizes)
    rows.append(
        Row(
            "write 1 KiB objects (put + commit)",
            st.small,
            w.total,
            "objects/s",
            SMALL_TARGET,
            f"blake3 {st.small / s_hash:,.0f} obj/s ({small_bytes / s_hash / MB:,.0f} MB/s) · "
            f"zstd-3 on 128 KiB blocks {small_bytes / s_comp / MB:,.0f} MB/s "
            f"({st.small / s_comp:,.0f} obj/s) · fsync'd writes of the same "
            f"{len(w.pack_sizes)} pack files {pack_bytes / file_s / MB:,.0f} MB/s · "
            f"SQLite insert of one catalog row per object {st.small / s_insert:,.0f} rows/s",
            shares(
                w.total.own,
                [
                    ("blake3", s_hash),
                    ("zstd", s_comp),
                    ("file writes", file_s),
                    ("SQLite insert", s_insert),
                ],
            ),
        )
    )
    rows.append(
        Row(
            "… of which put() phase",
            st.small,
            w.put,
            "objects/s",
            raw=f"{w.put.wall:.1f} s wall, {w.put.own:.1f} s own, {w.put.cpu:.1f} s CPU",
            share=shares(
                w.put.own, [("blake3", s_hash), ("zstd", s_comp), ("file writes", file_s)]
            ),
        )
    )
    rows.append(
        Row(
            "… of which commit() (index files, catalog)",
            st.small,
            w.commit,
            "objects/s",
            raw=f"{w.commit.wall:.1f} s wall, {w.commit.own:.1f} s own, {w.commit.cpu:.1f} s CPU "
            f"for {st.small:,} index entries",
            share=shares(w.commit.own, [("SQLite insert", s_insert)]),
        )
    )
    notes.append(
        f"1 KiB objects: {st.small:,} records of 1,024 bytes, {small_bytes / MB:,.1f} MB; zstd-3 "
        f"ratio on 128 KiB blocks {s_ratio:.2f}x, store ratio (payload / pack bytes) "
        f"{w.stats.new_bytes / pack_bytes:.2f}x; {len(w.pack_sizes)} packs, "
        f"{pack_bytes / MB:,.1f} MB"
    )

    repo = reopen(repo, root)
    check_sample(repo, w.ids, small)
    repo = reopen(repo, root)
    t, n_blocks = store_read(phases, f"read {st.small:,} x 1 KiB in write order", repo, w.ids)
    bound_s = n_blocks * s_block_decomp + s_hash
    rows.append(
        Row(
            "read 1 KiB objects, write order",
            st.small,
            t,
            "objects/s",
            raw=f"zstd-3 decompress {small_bytes / s_decomp / MB:,.0f} MB/s + blake3 → "
            f"{st.small / bound_s:,.0f} obj/s bound ({n_blocks:,} blocks read)",
            share=shares(t.own, [("zstd", n_blocks * s_block_decomp), ("blake3", s_hash)]),
        )
    )
    picks = random.Random(st.seed + 1).sample(w.ids, min(st.random_reads, len(w.ids)))
    repo = reopen(repo, root)
    t, n_blocks = store_read(phases, f"read {len(picks):,} x 1 KiB in random order", repo, picks)
    pick_hash = s_hash * len(picks) / st.small
    bound_s = n_blocks * s_block_decomp + pick_hash
    rows.append(
        Row(
            f"read 1 KiB objects, random order ({len(picks):,} reads)",
            len(picks),
            t,
            "objects/s",
            raw=f"one 128 KiB block decompress ({s_block_decomp * 1e6:,.0f} µs) per miss + "
            f"blake3 → {len(picks) / bound_s:,.0f} obj/s bound ({n_blocks:,} of {len(picks):,} "
            f"reads missed the {BLOCK_CACHE}-block cache)",
            share=shares(t.own, [("zstd", n_blocks * s_block_decomp), ("blake3", pick_hash)]),
        )
    )

    # ---- has: half written ids, half random ids, shuffled
    probe = w.ids + [rng.randbytes(32) for _ in range(st.absent)]
    rng.shuffle(probe)
    sample = probe[: st.raw_lookups]
    repo = reopen(repo, root)
    has = repo.has
    t, found = phases.run(f"has x {len(probe):,}", lambda: sum(1 for oid in probe if has(oid)))
    if found != st.small:
        raise SystemExit(f"has found {found} of {st.small} written ids")
    db = repo.catalog.url.removeprefix("sqlite:///")
    point_s = raw_sqlite_lookups(db, sample) * len(probe) / len(sample)
    batch_s = raw_sqlite_batched(db, sample) * len(probe) / len(sample)
    set_s = raw_set_lookups(w.ids, probe, min_s)
    raw_lookup = (
        f"sqlite3 point query on the same table {len(probe) / point_s:,.0f}/s · Python set "
        f"{len(probe) / set_s:,.0f}/s"
    )
    rows.append(
        Row(
            f"has: {len(probe):,} single repo.has calls (½ present)",
            len(probe),
            t,
            "lookups/s",
            raw=raw_lookup,
            share=shares(t.own, [("SQLite point queries", point_s)]),
        )
    )
    t, got = phases.run(f"has_many x {len(probe):,}", lambda: repo.catalog.has_many(probe))
    if len(got) != st.small:
        raise SystemExit(f"has_many found {len(got)} of {st.small} written ids")
    rows.append(
        Row(
            f"has: catalog.has_many over {len(probe):,} ids (½ present)",
            len(probe),
            t,
            "lookups/s",
            raw=f"sqlite3 `id IN (500 ids)` queries {len(probe) / batch_s:,.0f}/s · {raw_lookup}",
            share=shares(t.own, [("SQLite IN queries", batch_s)]),
        )
    )
    notes.append(
        f"has: {len(probe):,} ids, {st.small:,} written and {st.absent:,} random, shuffled; raw "
        f"SQLite speeds measured on the first {len(sample):,} of them"
    )
    repo.close()
    del small
    gc.collect()

    # ---- 4 MiB objects: text and random, each kind in its own repository
    for kind, objs in large.items():
        h, c, d, frames = large_raw[kind]
        nbytes = len(objs) * LARGE_SIZE
        stored = sum(len(f) or LARGE_SIZE for f in frames)
        repo = new_repo(root, f"large-{kind}")
        w = store_write(phases, f"write {len(objs)} x 4 MiB {kind}", repo, objs)
        file_s = raw_file_writes(root / "raw-files", w.pack_sizes)
        pack_bytes = sum(w.pack_sizes)
        rows.append(
            Row(
                f"write 4 MiB objects, {kind} (put + commit)",
                nbytes,
                w.total,
                "MB/s",
                LARGE_TARGET,
                f"blake3 {nbytes / h / MB:,.0f} MB/s · zstd-3 {nbytes / c / MB:,.0f} MB/s "
                f"(ratio {nbytes / stored:.2f}x) · fsync'd writes of the same "
                f"{len(w.pack_sizes)} pack files {pack_bytes / file_s / MB:,.0f} MB/s",
                shares(w.total.own, [("blake3", h), ("zstd", c), ("file writes", file_s)]),
            )
        )
        repo = reopen(repo, root)
        check_sample(repo, w.ids, objs)
        repo = reopen(repo, root)
        t, n_blocks = store_read(phases, f"read {len(objs)} x 4 MiB {kind}", repo, w.ids)
        if any(frames):
            decomp = f"zstd-3 decompress {nbytes / d / MB:,.0f} MB/s"
            parts = [("zstd", d), ("blake3", h)]
        else:
            decomp = "stored raw (zstd did not shrink it): no decompression"
            parts = [("blake3", h)]
        rows.append(
            Row(
                f"read 4 MiB objects, {kind}",
                nbytes,
                t,
                "MB/s",
                raw=f"{decomp} · blake3 {nbytes / h / MB:,.0f} MB/s",
                share=shares(t.own, parts),
            )
        )
        notes.append(
            f"4 MiB {kind}: {len(objs)} objects, {nbytes / MB:,.1f} MB; {len(w.pack_sizes)} "
            f"packs, {pack_bytes / MB:,.1f} MB; {n_blocks} block reads for {len(objs)} gets"
        )
        repo.close()
    return rows, notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, smoke run (< 20 s)")
    parser.add_argument("--profile", action="store_true", help="cProfile each store phase")
    parser.add_argument(
        "--cpu", type=int, default=None, help="CPU to pin to (default: the least busy)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    st = QUICK if args.quick else FULL
    pinned = pin_one_core(args.cpu)
    source = store_source()
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    phases = Phases(args.profile)
    root = Path(tempfile.mkdtemp(prefix="store-bench-", dir="/tmp"))
    try:
        whole, (rows, notes) = timed(lambda: run(st, root, phases))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())

    table = render_table(rows)
    header = [
        "# Object store throughput (benchmarks/store_bench.py)",
        "",
        f"- command: `{shlex.join(sys.orig_argv)}` (cwd {os.getcwd()})",
        f"- mode: {'quick (smoke run)' if args.quick else 'full'}; {st}",
        f"- CPU: {cpu_model()}; {pinned}; load average at start {load_start}, at end {load_end}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); "
        f"blake3 {blake3.__version__}; zstandard {zstandard.__version__} "
        f"(libzstd {'.'.join(map(str, zstandard.ZSTD_VERSION))}, {zstandard.backend} backend); "
        f"SQLAlchemy {sqlalchemy.__version__}; SQLite {sqlite3.sqlite_version}",
        f"- repository: LocalBackend under {root.parent} (removed), pack size "
        f"{DEFAULT_PACK_SIZE // MIB} MiB, block size {DEFAULT_BLOCK_SIZE // KIB} KiB, zstd level "
        f"{DEFAULT_LEVEL}, SQLite catalog",
        f"- store source: {source}",
        f"- total wall time {whole.wall:.1f} s; other processes kept this one waiting for its "
        f"core {whole.runq:.1f} s of that ({phases.total.runq:.1f} s of the "
        f"{phases.total.wall:.1f} s of store phases)"
        + (" — cProfile on: store timings are inflated" if args.profile else ""),
        "- value = count / wall time.  Own time = wall time minus the time this process was "
        "ready to run but waited for its core (run-queue wait, /proc/self/schedstat): an "
        "estimate for an otherwise idle core; disk waits (fsync) stay in.  Raw speeds are on "
        "own time, the fastest of up to 5 passes; store phases are one pass, garbage "
        "collector on.  Share = own time a building block alone needs for the store's work / "
        "the store's own time.  MB = 10^6 bytes.",
        "",
    ]
    body = [table, "", *(f"- {n}" for n in notes), ""]
    print("\n".join(body))
    if phases.profiles:
        profiles = render_profiles(phases.profiles)
        body += ["## cProfile of store phases (top functions by own time)", "", profiles]
        print(profiles)
    args.output.write_text("\n".join(header + body))
    print(f"written to {args.output} in {whole.wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
