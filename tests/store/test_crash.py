"""Crash consistency (issue 20): commands SIGKILLed at their own write steps.

Each test runs one command of the real CLI (through ``crashrunner.py``) on a
copy of a prepared repository, first uninjected -- which lists its write
steps: every mutating backend call, before it, after it and, for writes,
with the temporary file durable but not renamed; every catalog commit,
before and after -- then once per chosen step, killed there with SIGKILL,
plus a few kills at random moments.  After each kill:

* ``check --read-data`` finds no errors, with the dead process's catalog
  (possibly mid-transaction) and with a fresh one; the only warnings allowed
  are packs no index names and temporary files;
* every snapshot that existed before still exists (forget: every one it
  keeps) and every snapshot there is exports to the exact tar stream of the
  archive it was made from;
* the dead process's lock is stale, so the same command, run again without
  ``unlock``, succeeds -- and afterwards all of the above holds again, now
  including what the command added.  (One scenario first runs what a
  nightly script runs next, forget and prune, which must count the killed
  ingest's snapshot if it was committed.)

Kill points: every step when COURSEVAULT_CRASH_POINTS=all, otherwise a
spread of ``POINTS[op]`` steps over each command (about a third), plus
``COURSEVAULT_CRASH_RANDOM`` (default 2) random moments per command.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import CORPUS_DIR

from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.ids import ObjectType
from coursevault.store.locks import Lock, list_locks
from coursevault.store.repository import Repository
from coursevault.store.series import committed_last
from coursevault.store.treecodec import decode_tree

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("crashrunner.py")
# A small real course (72 members, 0.6 MB, mostly files) and two nights of
# change made from it: cheap enough to check and export after every kill.
COURSE = "mod_simplecertificate_tests_other_backup-test-course-for-moodle2.3-and-above.mbz"
NIGHTS = 3
# 1 KiB packs and blocks: a night's few hundred kilobytes make a dozen packs,
# so a command has many write steps to be killed at.  Dictionary depth 1:
# night 2 is compressed against night 1's walk dictionary, night 3 on its
# own, so forgetting nights 1-2 leaves a prune packs to delete and to repack.
REPO_OPTIONS: dict[str, Any] = {"pack_size": 1024, "block_size": 1024, "dictionary_depth": 1}
POINTS = {
    "ingest-first": 12,
    "ingest-night-2": 12,
    "ingest-then-forget": 4,
    "forget": 8,
    "prune": 10,  # with prune-merge's: 14 of prune's steps (16 before there were two)
    "prune-merge": 4,
    "index-rebuild": 8,
}
RANDOM_KILLS = int(os.environ.get("COURSEVAULT_CRASH_RANDOM", "2"))
# what check may warn about after a kill: nothing a snapshot needs
# a writer killed between its index file and journaling it leaves a file
# nothing can use, as one killed before indexing leaves packs
HARMLESS = ("is not named by any index", "temporary file ", "nothing can use it; prune removes it")
# right after a kill only: a snapshot committed (its head holds it) whose journal
# entry the kill prevented; the course's next writer, forget or prune journals it
PENDING = "is not journaled yet"


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("nights")
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gen_course.py"),
            "nights",
            "--out",
            str(out),
            "--nights",
            str(NIGHTS),
            "--from",
            str(CORPUS_DIR / COURSE),
        ],
        check=True,
        capture_output=True,
    )
    return [out / f"night-{n:02d}.mbz" for n in range(1, NIGHTS + 1)]


class Runner:
    """The crash runner subprocess: runs CLI commands, killed where asked."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.proc = subprocess.Popen(
            [sys.executable, str(RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.runs = 0

    def run(
        self, argv: list[str], *, kill_at: int | None = None, delay: float | None = None
    ) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.runs += 1
        log = self.logs / f"run-{self.runs}.log"
        request = {
            "argv": argv,
            "log": str(log),
            "trace": str(self.logs / f"run-{self.runs}.trace"),
            "kill_at": kill_at,
            "delay": delay,
        }
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the crash runner died"
        reply: dict[str, Any] = json.loads(line)
        reply["output"] = log.read_text(errors="replace") if log.exists() else ""
        return reply

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    logs = tmp_path / "logs"
    logs.mkdir()
    r = Runner(logs)
    try:
        yield r
    finally:
        r.close()


@dataclass
class Scenario:
    """A prepared repository, a command to kill, and what must hold after it."""

    name: str
    argv: list[str]  # without --repo/--cache-dir
    prepare: Callable[[Repository], None]
    # snapshots (by the archive they were made from) a rerun must end with
    final: Callable[[set[str]], set[str]]
    # snapshots the command may remove (forget); all others must survive
    removable: Callable[[Repository], set[str]] = lambda _repo: set()
    sources: dict[str, Path] = field(default_factory=dict)  # archive name -> path
    # the command leaves no leftovers once it has run to the end (prune)
    cleans_up: bool = False
    # what the uninjected run must say it did (so the kills hit real work)
    says: str = ""
    # the command finds no catalog and makes its own (a first run on a host)
    no_catalog: bool = False
    # what a nightly script runs next, before the command is run again; and
    # how many snapshots those leave (their policy applied to all there are)
    then: list[list[str]] = field(default_factory=list)
    then_leaves: int | None = None
    # snapshots the rerun may end with besides ``final`` (those ``then`` may keep)
    may_keep: set[str] = field(default_factory=set)
    # steps always killed at, besides the spread (a regular expression)
    focus: str = ""
    repo_options: dict[str, Any] = field(default_factory=lambda: REPO_OPTIONS)


@dataclass
class Failure:
    point: str
    message: str


class Crash:
    """Kills one scenario's command at its write steps and checks the aftermath."""

    def __init__(self, scenario: Scenario, runner: Runner, tmp: Path) -> None:
        self.scenario = scenario
        self.runner = runner
        self.tmp = tmp
        self.base = tmp / "base"
        self.work = tmp / "work"
        self._tars: dict[str, bytes] = {}
        Repository.init(LocalBackend(self.base / "repo"), **scenario.repo_options)
        with Repository.open(LocalBackend(self.base / "repo"), cache_dir=self.base / "cache") as r:
            scenario.prepare(r)
            self.before = {s.id for s in r.snapshots()}
            self.removable = scenario.removable(r)
        if scenario.no_catalog:
            shutil.rmtree(self.base / "cache")
        self.failures: list[Failure] = []

    def argv(self) -> list[str]:
        return [
            *self.scenario.argv,
            "--repo",
            str(self.work / "repo"),
            "--cache-dir",
            str(self.work / "cache"),
        ]

    def reset(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.copytree(self.base, self.work)

    # -- the invariants --------------------------------------------------------------
    def tar(self, name: str) -> bytes:
        if name not in self._tars:
            self._tars[name] = gzip.decompress(self.scenario.sources[name].read_bytes())
        return self._tars[name]

    def assert_sound(
        self, cache: Path, when: str, fresh: bool = True, killed: bool = False
    ) -> set[str]:
        """check --read-data with ``cache`` and (``fresh``) with a new catalog;
        every snapshot exports exactly; every lock left is stale.  Returns the
        snapshots' ids.  ``killed``: right after the kill, a committed snapshot
        may still wait for its journal entry (and catalogs for it)."""
        harmless = (*HARMLESS, PENDING) if killed else HARMLESS
        repo_dir = self.work / "repo"
        new = self.tmp / "fresh-cache"
        shutil.rmtree(new, ignore_errors=True)
        for cache_dir in (cache, new) if fresh else (cache,):
            with Repository.open(LocalBackend(repo_dir), cache_dir=cache_dir) as repo:
                report = check_repository(repo, read_data=True)
                assert report.ok, f"{when}: check with {cache_dir.name}: {report.errors}"
                odd = [p.message for p in report.problems]
                odd = [m for m in odd if not any(h in m for h in harmless)]
                assert not odd, f"{when}: check warns {odd}"
        with Repository.open(LocalBackend(repo_dir), cache_dir=cache) as repo:
            snaps = repo.snapshots()
            out = self.tmp / "export.mbz"
            for snap in snaps:
                source = str(snap.record["source"]["file"])
                export_snapshot(repo, snap.id, str(out), level=1)
                assert gzip.decompress(out.read_bytes()) == self.tar(source), (
                    f"{when}: snapshot {snap.id} does not export to {source}"
                )
            listed = {key.rsplit("/", 1)[1] for key, _ in repo.backend.list("snapshots/")}
            unseen = listed - {s.id for s in snaps}
            if killed:
                unseen -= committed_last(repo, unseen)
            assert not unseen and {s.id for s in snaps} <= listed, (
                f"{when}: the catalog lists other snapshots"
            )
        # what a dead process left blocks nobody, not even a deleter
        backend = LocalBackend(repo_dir)
        live = [lk.describe() for lk in list_locks(backend) if not lk.is_stale()]
        assert not live, f"{when}: live locks left: {live}"
        Lock(backend, True, "prune").acquire().release()
        return {s.id for s in snaps}

    def sources_of(self, ids: set[str]) -> set[str]:
        with Repository.open(LocalBackend(self.work / "repo"), cache_dir=self.work / "cache") as r:
            return {str(s.record["source"]["file"]) for s in r.snapshots() if s.id in ids}

    def after_kill(self, what: str) -> None:
        # inspect a copy of the dead process's catalog: the rerun gets it untouched
        seen = self.tmp / "seen-cache"
        shutil.rmtree(seen, ignore_errors=True)
        if (self.work / "cache").exists():  # not if killed before it made one
            shutil.copytree(self.work / "cache", seen)
        ids = self.assert_sound(seen, f"{what}, after the kill", killed=True)
        lost = self.before - self.removable - ids
        assert not lost, f"{what}, after the kill: snapshots lost: {sorted(lost)}"
        self.run_then(what)

        rerun = self.runner.run(self.argv())
        assert rerun["code"] == 0, f"{what}: the rerun failed: {rerun['output']}"
        # a finished command: its own catalog is the one to question
        ids = self.assert_sound(self.work / "cache", f"{what}, after the rerun", fresh=False)
        lost = self.before - self.removable - ids
        assert not lost, f"{what}, after the rerun: snapshots lost: {sorted(lost)}"
        self.assert_final(ids, f"{what}, after the rerun")
        if self.scenario.cleans_up:
            self.assert_clean(f"{what}, after the rerun")

    def run_then(self, what: str) -> None:
        """The commands that follow the killed one in a nightly script."""
        for argv in self.scenario.then:
            done = self.runner.run([*argv, *self.argv()[len(self.scenario.argv) :]])
            assert done["code"] == 0, f"{what}, then {argv}: {done['output']}"
        if self.scenario.then:
            when = f"{what}, then {self.scenario.then}"
            ids = self.assert_sound(self.work / "cache", when, fresh=False)
            leaves = self.scenario.then_leaves
            assert leaves is None or len(ids) == leaves, f"{what}: {len(ids)} snapshots left"

    def assert_final(self, ids: set[str], when: str) -> None:
        expected = self.scenario.final(self.sources_of(self.before - self.removable))
        got = self.sources_of(ids)
        assert expected <= got <= expected | self.scenario.may_keep, f"{when}: {sorted(got)}"

    def assert_clean(self, when: str) -> None:
        """No unreferenced pack, no temporary file (but a lock's: prune leaves
        those, a locker may be writing one)."""
        with Repository.open(LocalBackend(self.work / "repo"), cache_dir=self.work / "cache") as r:
            left = [p.message for p in check_repository(r).problems]
        left = [m for m in left if not m.startswith("temporary file locks/")]
        assert not left, f"{when}: left behind: {left}"

    # -- the runs --------------------------------------------------------------------
    def count(self) -> tuple[list[str], float]:
        """The uninjected run: its write steps and how long it took."""
        self.reset()
        done = self.runner.run(self.argv())
        assert done["code"] == 0, done["output"]
        assert re.search(self.scenario.says, done["output"]), done["output"]
        self.run_then(f"{self.scenario.name}, uninjected")
        ids = self.assert_sound(self.work / "cache", f"{self.scenario.name}, uninjected")
        self.assert_final(ids, f"{self.scenario.name}, uninjected")
        if self.scenario.cleans_up:
            self.assert_clean(f"{self.scenario.name}, uninjected")
        return done["events"], done["seconds"]

    def kill_at(self, n: int, event: str) -> None:
        kill_at(self, n, event)

    def kill_after(self, delay: float) -> None:
        kill_after(self, delay)


def kill_at(crash: Any, n: int, event: str, same: Callable[[str], str] = str) -> None:
    """Run ``crash``'s command again from its prepared state, killed at its
    ``n``-th step, which must be ``event`` (compared through ``same``), and
    check what it left."""
    what = f"{crash.scenario.name} killed at step {n} ({event})"
    crash.reset()
    killed = crash.runner.run(crash.argv(), kill_at=n)
    try:
        assert killed["killed"], f"{what}: not killed: {killed['output']}"
        last = killed["events"][-1]
        assert same(last) == same(event), f"{what}: steps differ: {last}"
        crash.after_kill(what)
    except AssertionError as exc:
        crash.failures.append(Failure(what, str(exc)))


def kill_after(crash: Any, delay: float) -> None:
    """Run ``crash``'s command again from its prepared state, killed after
    ``delay`` seconds (or let finish), and check what it left."""
    crash.reset()
    killed = crash.runner.run(crash.argv(), delay=delay)
    last = killed["events"][-1] if killed["events"] else "no step yet"
    state = "killed" if killed["killed"] else "finished"
    what = f"{crash.scenario.name} {state} after {delay:.3f}s (last step: {last})"
    try:
        assert killed["killed"] or killed["code"] == 0, f"{what}: {killed['output']}"
        crash.after_kill(what)
    except AssertionError as exc:
        crash.failures.append(Failure(what, str(exc)))


def chosen_points(total: int, budget: int) -> list[int]:
    """Every step, or ``budget`` of them spread evenly (first and last included)."""
    if os.environ.get("COURSEVAULT_CRASH_POINTS") == "all" or total <= budget:
        return list(range(1, total + 1))
    return sorted({1 + round(i * (total - 1) / (budget - 1)) for i in range(budget)})


def kill_everywhere(crash: Any, budget: int, focus: str | None) -> tuple[list[str], list[int]]:
    """Run ``crash``'s command uninjected, then killed at ``budget`` spread
    steps and every step matching ``focus``, then at random moments.
    Returns its steps and the ones killed at."""
    events, seconds = crash.count()
    points = chosen_points(len(events), budget)
    if focus:
        focused = {n for n, e in enumerate(events, 1) if re.search(focus, e)}
        assert focused, events
        points = sorted(set(points) | focused)
    for n in points:
        crash.kill_at(n, events[n - 1])
    rng = random.Random(crash.scenario.name)
    for _ in range(RANDOM_KILLS):
        crash.kill_after(rng.uniform(0.0, seconds))
    return events, points


def run_scenario(scenario: Scenario, runner: Runner, tmp: Path) -> None:
    crash = Crash(scenario, runner, tmp)
    events, points = kill_everywhere(crash, POINTS[scenario.name], scenario.focus)
    print(f"{scenario.name}: {len(events)} steps, killed at {len(points)} + {RANDOM_KILLS} random")
    report = "\n".join(f"{f.point}:\n    {f.message}" for f in crash.failures)
    assert not crash.failures, f"{len(crash.failures)} of {len(points) + RANDOM_KILLS}:\n{report}"


# -- the commands ---------------------------------------------------------------------
def _ingest(paths: list[Path]) -> Callable[[Repository], None]:
    def prepare(repo: Repository) -> None:
        for path in paths:
            ingest_archive(repo, str(path))

    return prepare


def _forget_all_but_last(repo: Repository) -> set[str]:
    return {s.id for s in repo.snapshots()[:-1]}


def test_ingest_first_night(nights: list[Path], runner: Runner, tmp_path: Path) -> None:
    scenario = Scenario(
        "ingest-first",
        ["ingest", str(nights[0])],
        _ingest([]),
        lambda _before: {nights[0].name},
        sources={p.name: p for p in nights},
        no_catalog=True,
    )
    run_scenario(scenario, runner, tmp_path)


def test_ingest_second_night(nights: list[Path], runner: Runner, tmp_path: Path) -> None:
    scenario = Scenario(
        "ingest-night-2",
        ["ingest", str(nights[1])],
        _ingest(nights[:1]),
        lambda before: before | {nights[1].name},
        sources={p.name: p for p in nights},
    )
    run_scenario(scenario, runner, tmp_path)


def test_ingest_then_forget_and_prune(nights: list[Path], runner: Runner, tmp_path: Path) -> None:
    """A nightly script goes on after a killed ingest: forget and prune must
    count the night if it was committed (its head holds it), and the next
    night's ingest -- here the same archive again -- follows whatever is left."""
    scenario = Scenario(
        "ingest-then-forget",
        ["ingest", str(nights[2])],
        _ingest(nights[:2]),
        lambda _before: {nights[2].name},
        removable=lambda repo: {s.id for s in repo.snapshots()},
        sources={p.name: p for p in nights},
        then=[["forget", "--all", "--keep-last", "1"], ["prune"]],
        then_leaves=1,
        may_keep={nights[1].name},
        # between the head's swap and the snapshot file: committed, not yet listed
        focus=r"^(compare_and_swap refs/heads/.*: after|write snapshots/.*: (before|after))$",
    )
    run_scenario(scenario, runner, tmp_path)


def test_forget(nights: list[Path], runner: Runner, tmp_path: Path) -> None:
    scenario = Scenario(
        "forget",
        ["forget", "--all", "--keep-last", "1"],
        # night 2 committed last: its record is in the course's head, which
        # forgetting it must change too
        _ingest([nights[0], nights[2], nights[1]]),
        lambda _before: {nights[-1].name},
        removable=_forget_all_but_last,
        sources={p.name: p for p in nights},
    )
    run_scenario(scenario, runner, tmp_path)


def test_prune_after_forget(nights: list[Path], runner: Runner, tmp_path: Path) -> None:
    def prepare(repo: Repository) -> None:
        _ingest(nights)(repo)
        for snap_id in _forget_all_but_last(repo):
            repo.delete_snapshot(snap_id)

    scenario = Scenario(
        "prune",
        ["prune"],
        prepare,
        lambda before: before,
        sources={p.name: p for p in nights},
        cleans_up=True,
        says=r"[1-9][0-9]* of [0-9]+ packs deleted, [1-9][0-9]* repacked",
        # its new index files written, not journaled yet: the old ones still
        # name what they name (check called that journal damage once)
        focus=r"^create journal/\d+: before$",
    )
    run_scenario(scenario, runner, tmp_path)


def test_prune_merging_small_packs(nights: list[Path], runner: Runner, tmp_path: Path) -> None:
    """Each night's few packs are small against a 256 KiB target: prune
    copies their blocks whole into new packs, indexes them there, then
    deletes the small ones -- killed anywhere, nothing is lost."""
    scenario = Scenario(
        "prune-merge",
        ["prune", "--merge-min", "2"],
        _ingest(nights),
        lambda before: before,
        sources={p.name: p for p in nights},
        cleans_up=True,
        says=r"[1-9][0-9]* merged into [1-9]",
        repo_options={**REPO_OPTIONS, "pack_size": 256 * 1024},
    )
    run_scenario(scenario, runner, tmp_path)


def test_index_rebuild(nights: list[Path], runner: Runner, tmp_path: Path) -> None:
    scenario = Scenario(
        "index-rebuild",
        ["index", "rebuild"],
        _ingest(nights),
        lambda before: before,
        sources={p.name: p for p in nights},
    )
    run_scenario(scenario, runner, tmp_path)


# -- a raw write session killed while it writes packs -----------------------------------
# (what the store alone promises, whatever layer drives it: the killed
# session's packs are only warnings, nothing of it is visible, and a deleter
# can lock the repository at once)
PACKS_BEFORE_KILL = 5

WRITER = """
import json, random, sys
from coursevault.store.backend import LocalBackend
from coursevault.store.ids import ObjectType
from coursevault.store.repository import Repository

root_dir, cache = sys.argv[1:3]
repo = Repository.open(LocalBackend(root_dir), cache_dir=cache)

# 1. one complete, committed snapshot
with repo.writer() as w:
    ids = [w.put(ObjectType.BLOB, b"committed %d " % i * 50) for i in range(300)]
    root = w.put_tree(ids, b"committed root")
    snap = w.commit({"course": "c", "time": "t", "epoch": 1.0, "root": root.hex(), "parents": []})
print(json.dumps({"snap": snap, "root": root.hex()}), flush=True)

# 2. a long session that is killed before it commits
rng = random.Random(1)
w = repo.writer()
packs = 0
for i in range(4000):
    w.put(ObjectType.BLOB, rng.randbytes(3000 + i % 500))
    if w.stats.packs != packs:
        packs = w.stats.packs
        print("pack", packs, flush=True)
print("done", flush=True)
sys.stdin.readline()  # never commit: wait to be killed
"""


def test_sigkill_mid_session_leaves_a_sound_repository(tmp_path: Path) -> None:
    root_dir = tmp_path / "repo"
    backend = LocalBackend(root_dir)
    Repository.init(backend, pack_size=64 * 1024)
    cache = tmp_path / "cache"

    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root_dir), str(cache)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        assert first, proc.stderr.read()
        committed = json.loads(first)
        seen = 0
        while seen < PACKS_BEFORE_KILL:
            line = proc.stdout.readline()
            assert line.startswith("pack "), line + proc.stderr.read()
            seen += 1
        proc.kill()  # SIGKILL, while it keeps writing packs
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -9

    # the writer's lock file is left behind, but is recognised as stale
    [lock] = list_locks(backend)
    assert lock.is_stale()
    written = [k for k, _ in backend.list("packs/")]
    assert len(written) >= 1 + PACKS_BEFORE_KILL

    for cache_dir in (cache, tmp_path / "fresh-cache"):  # the dead writer's catalog, and a new one
        with Repository.open(LocalBackend(root_dir), cache_dir=cache_dir) as repo:
            report = check_repository(repo, read_data=True)
            assert report.ok, report.errors
            warns = [p.message for p in report.problems]
            assert all(
                "not named by any index" in m or m.startswith("temporary file") for m in warns
            ), warns
            unreferenced = [m for m in warns if "unreferenced" in m]
            assert len(unreferenced) >= PACKS_BEFORE_KILL
            indexed = {
                loc.pack.hex()
                for name in repo.catalog.index_files()
                for _oid, loc in repo.read_index(name)
            }
            assert indexed  # the committed session's packs
            orphans = {k.rsplit("/", 1)[1] for k in written} - indexed
            assert len(orphans) == len(unreferenced)
            assert all(any(name in m for m in unreferenced) for name in orphans)

            [snap] = repo.snapshots()
            assert snap.id == committed["snap"] and snap.root == committed["root"]
            kind, body = repo.get(bytes.fromhex(snap.root))
            assert kind is ObjectType.TREE
            refs, tail = decode_tree(body)
            assert tail == b"committed root" and len(refs) == 300
            for i, oid in enumerate(refs):
                assert repo.get(oid) == (ObjectType.BLOB, b"committed %d " % i * 50)
            # nothing of the killed session is visible
            assert repo.catalog.count_objects() == 301

    # and the repository is fully usable: the stale lock blocks nobody
    with Repository.open(LocalBackend(root_dir), cache_dir=cache) as repo:
        Lock(backend, True, "prune").acquire().release()
        with repo.writer() as w:
            oid = w.put(ObjectType.BLOB, b"after the crash")
            top = w.put_tree([oid], b"")
            w.commit({"course": "c", "time": "t", "epoch": 2.0, "root": top.hex(), "parents": []})
        assert len(repo.snapshots()) == 2
        assert check_repository(repo, read_data=True).ok
