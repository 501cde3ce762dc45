"""Crash consistency of the repairs and of ``sync --refill`` (test_crash.py's
harness, on repositories that start out damaged).

Each test damages a prepared repository the way the guide's "When something
is wrong" describes (a pack's byte flipped or the pack gone, an index file
gone or damaged, a journal file damaged, a head ref or a last record
damaged; a replica that lost a pack and was repaired), runs the repair that
the guide names for it -- first uninjected, then SIGKILLed at a spread of its
write steps and at random moments -- and asserts, after each kill:

* a kill makes nothing worse: every snapshot that exported to the exact tar
  stream of its archive before the command still does (with the dead
  process's catalog and with a new one), and ``check --read-data`` reports
  no error of a kind, nor about an object, that neither the damage (before
  the command) nor the uninjected run's end state has -- but for an index
  file written and not journaled yet that names what snapshots need (a
  repair or refill killed between the two): check names it as the
  journal's, which the rerun (or ``repair journal``) mends;
* the dead process's lock is stale: the same command, run again without
  ``unlock``, succeeds and leaves the repository as the uninjected run did
  (the same errors -- none but for a pack whose objects are lost --, the
  same snapshots exporting, no warning but what an interrupted writer
  leaves).
"""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import test_crash
from test_crash import (
    HARMLESS,
    RANDOM_KILLS,
    REPO_OPTIONS,
    Failure,
    Runner,
    kill_after,
    kill_at,
    kill_everywhere,
)

from coursevault.errors import CoursevaultError
from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.locks import Lock, list_locks
from coursevault.store.pack import iter_blocks
from coursevault.store.repository import Repository

# a spread of steps per command, besides the focused ones (``focus``);
# COURSEVAULT_CRASH_POINTS=all kills at every step (test_crash.chosen_points)
POINTS = {
    "repair-packs-damaged": 2,
    "repair-packs-missing": 2,
    "repair-index-deleted": 2,
    "repair-index-damaged": 2,
    "repair-journal": 2,
    "repair-refs": 2,
    "repair-refs-record": 2,
    "sync-refill": 2,
}
# test_crash's fixtures: the nights made from one small course, the runner
nights = test_crash.nights
runner = test_crash.runner
# 8 KiB packs of 1 KiB blocks: a damaged pack holds objects that still read
PACKED = {**REPO_OPTIONS, "pack_size": 8 * 1024}
INTERRUPTED = "is not journaled, and snapshots need"
HASH = re.compile(r"[0-9a-f]{64}")
HEX = re.compile(r"[0-9a-f]{12,64}")


@dataclass(frozen=True)
class State:
    """What a repository gives, as far as the invariants go."""

    errors: frozenset[tuple[str, str]]  # (kind, message)
    warnings: frozenset[str]  # those not HARMLESS
    exports: dict[str, str]  # snapshot id -> "ok", or why not

    @property
    def kinds(self) -> set[str]:
        return {kind for kind, _m in self.errors}

    @property
    def named(self) -> set[str]:
        """The objects, packs and files the errors name (ids, maybe short)."""
        return {h for _k, m in self.errors for h in HEX.findall(m)}

    @property
    def exported(self) -> set[str]:
        return {s for s, how in self.exports.items() if how == "ok"}


def _named_within(named: set[str], known: set[str]) -> set[str]:
    """Those of ``named`` that no id of ``known`` is or begins with."""
    return {h for h in named if not any(k.startswith(h) or h.startswith(k) for k in known)}


@dataclass
class RepairScenario:
    name: str
    argv: list[str]  # the command; "{src}", "{repo}": a replica's source, the replica
    damage: Callable[[Path], None]  # on the repository's folder
    says: str = ""  # what the uninjected run must say (so the kills hit real work)
    # the uninjected run ends with check --read-data clean
    clean: bool = True
    # a replica: base/repo is synced from base/src, then damaged and repaired
    replica: bool = False
    # steps always killed at (a regular expression): between an index file
    # and its journal entry, where what it names is needed already
    focus: str = r"^((write|create) index/.*: after|temporary file of journal/\d+: written)$"
    repo_options: dict[str, object] = field(default_factory=lambda: dict(PACKED))


class RepairCrash:
    def __init__(
        self, scenario: RepairScenario, nights: list[Path], runner: Runner, tmp: Path
    ) -> None:
        self.scenario = scenario
        self.runner = runner
        self.tmp = tmp
        self.base = tmp / "base"
        self.work = tmp / "work"
        self.tars = {p.name: gzip.decompress(p.read_bytes()) for p in nights}
        self.failures: list[Failure] = []
        first = self.base / ("src" if scenario.replica else "repo")
        Repository.init(LocalBackend(first), **scenario.repo_options)  # type: ignore[arg-type]
        with Repository.open(LocalBackend(first), cache_dir=self.base / "cache") as r:
            for night in nights:
                ingest_archive(r, str(night))
        if scenario.replica:
            cache = ["--cache-dir", str(self.base / "cache")]
            done = runner.run(["sync", str(first), str(self.base / "repo"), *cache])
            assert done["code"] == 0, done["output"]
        scenario.damage(self.base / "repo")
        if scenario.replica:  # what the guide says to run first
            repo = ["--repo", str(self.base / "repo"), "--cache-dir", str(self.base / "cache")]
            done = runner.run(["repair", "packs", *repo])
            assert done["code"] == 0, done["output"]
        self.reset()
        # the catalog the command finds, and one made afresh
        self.before = self.state(self.work / "cache", "before")
        self.before_fresh = self.state(None, "before, a new catalog")
        assert self.before_fresh.errors, "the damage did nothing"

    def argv(self) -> list[str]:
        argv = [
            a.replace("{src}", str(self.work / "src")).replace("{repo}", str(self.work / "repo"))
            for a in self.scenario.argv
        ]
        repo = [] if self.scenario.replica else ["--repo", str(self.work / "repo")]
        return [*argv, *repo, "--cache-dir", str(self.work / "cache")]

    def reset(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.copytree(self.base, self.work)

    def state(self, cache: Path | None, when: str) -> State:
        if cache is None:
            cache = self.tmp / "fresh-cache"
            shutil.rmtree(cache, ignore_errors=True)
        repo_dir = self.work / "repo"
        with Repository.open(LocalBackend(repo_dir), cache_dir=cache) as repo:
            report = check_repository(repo, read_data=True)
            errors = frozenset((p.kind, p.message) for p in report.errors)
            warnings = frozenset(
                p.message
                for p in report.problems
                if p.severity != "error" and not any(h in p.message for h in HARMLESS)
            )
            exports: dict[str, str] = {}
            out = self.tmp / "export.mbz"
            for snap in repo.snapshots():
                source = str(snap.record["source"]["file"])
                try:
                    export_snapshot(repo, snap.id, str(out), level=1)
                except CoursevaultError as exc:  # refused, saying why
                    exports[snap.id] = f"{type(exc).__name__}: {exc}"
                    continue
                assert gzip.decompress(out.read_bytes()) == self.tars[source], (
                    f"{when}: snapshot {snap.id} does not export to {source}"
                )
                exports[snap.id] = "ok"
        return State(errors, warnings, exports)

    # -- the invariants --------------------------------------------------------------
    def assert_no_worse(self, after: State, before: State, when: str) -> None:
        # right after a kill only: an index file written, its entry not, naming
        # what snapshots need already; the rerun journals it
        after = State(
            frozenset(e for e in after.errors if INTERRUPTED not in e[1]),
            after.warnings,
            after.exports,
        )
        lost = before.exported - after.exported
        assert not lost, f"{when}: no longer export: { {s: after.exports.get(s) for s in lost} }"
        kinds = after.kinds - before.kinds - self.final.kinds
        assert not kinds, f"{when}: new kinds of error {kinds}: {sorted(after.errors)}"
        new = _named_within(after.named, before.named | self.final.named)
        assert not new, f"{when}: errors about more: {sorted(after.errors - before.errors)}"
        warns = after.warnings - before.warnings - self.final.warnings
        assert not warns, f"{when}: warns {sorted(warns)}"

    def assert_as_uninjected(self, after: State, when: str) -> None:
        assert after.errors == self.final.errors, (
            f"{when}: errors {sorted(after.errors)}, uninjected {sorted(self.final.errors)}"
        )
        assert after.exports == self.final.exports, f"{when}: exports {after.exports}"
        assert after.warnings <= self.final.warnings, f"{when}: warns {sorted(after.warnings)}"

    def assert_locks_stale(self, when: str) -> None:
        for repo_dir in (self.work / "repo", self.work / "src"):
            if repo_dir.exists():
                backend = LocalBackend(repo_dir)
                live = [lk.describe() for lk in list_locks(backend) if not lk.is_stale()]
                assert not live, f"{when}: live locks left in {repo_dir.name}: {live}"

    def after_kill(self, what: str) -> None:
        seen = self.tmp / "seen-cache"
        shutil.rmtree(seen, ignore_errors=True)
        shutil.copytree(self.work / "cache", seen)
        self.assert_locks_stale(what)
        self.assert_no_worse(self.state(seen, what), self.before, f"{what}, its catalog")
        after = self.state(None, f"{what}, a new catalog")
        self.assert_no_worse(after, self.before_fresh, f"{what}, a new catalog")
        Lock(LocalBackend(self.work / "repo"), True, "prune").acquire().release()

        rerun = self.runner.run(self.argv())
        assert rerun["code"] == 0, f"{what}: the rerun failed: {rerun['output']}"
        assert "Traceback" not in rerun["output"], f"{what}: the rerun: {rerun['output']}"
        self.assert_locks_stale(f"{what}, after the rerun")
        when = f"{what}, after the rerun"
        self.assert_as_uninjected(self.state(self.work / "cache", when), when)

    # -- the runs --------------------------------------------------------------------
    def count(self) -> tuple[list[str], float]:
        self.reset()
        done = self.runner.run(self.argv())
        assert done["code"] == 0, done["output"]
        assert "Traceback" not in done["output"], done["output"]
        assert re.search(self.scenario.says, done["output"]), done["output"]
        self.final = self.state(self.work / "cache", "uninjected")
        fresh = self.state(None, "uninjected, a new catalog")
        assert fresh.errors == self.final.errors and fresh.exports == self.final.exports, fresh
        if self.scenario.clean:
            assert not self.final.errors, sorted(self.final.errors)
            assert set(self.final.exports) >= set(self.before_fresh.exports)
            assert set(self.final.exports.values()) == {"ok"}, self.final.exports
        self.assert_no_worse(self.final, self.before_fresh, "uninjected")
        return done["events"], done["seconds"]

    def kill_at(self, n: int, event: str) -> None:
        # a journal written afresh has a new id, and so parts of other names
        kill_at(self, n, event, same=lambda step: HASH.sub("#", step))

    def kill_after(self, delay: float) -> None:
        kill_after(self, delay)


def run_repair(scenario: RepairScenario, nights: list[Path], runner: Runner, tmp: Path) -> None:
    crash = RepairCrash(scenario, nights, runner, tmp)
    events, points = kill_everywhere(crash, POINTS[scenario.name], scenario.focus)
    print(
        f"{scenario.name}: {len(events)} steps, killed at {len(points)} + {RANDOM_KILLS} random;"
        f" errors before {sorted(crash.before_fresh.kinds)} ({len(crash.before_fresh.errors)}),"
        f" after {sorted(crash.final.kinds)} ({len(crash.final.errors)});"
        f" exports before {len(crash.before_fresh.exported)}/{len(crash.before_fresh.exports)}"
        f" (its catalog {len(crash.before.exported)}),"
        f" after {len(crash.final.exported)}/{len(crash.final.exports)}"
    )
    report = "\n".join(f"{f.point}:\n    {f.message}" for f in crash.failures)
    assert not crash.failures, f"{len(crash.failures)} of {len(points) + RANDOM_KILLS}:\n{report}"


# -- the damage -----------------------------------------------------------------------
def _files(repo: Path, under: str) -> list[Path]:
    return sorted(p for p in (repo / under).rglob("*") if p.is_file() and p.name[0] != ".")


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def _newest(repo: Path, under: str) -> Path:
    """The last night's: the nights before it do not need it, and must go on exporting."""
    return max(_files(repo, under), key=lambda p: (p.stat().st_mtime_ns, p.name))


def _flip_a_pack(repo: Path) -> None:
    """One byte of one block of the pack of most blocks: the others still read."""
    pack = max(_files(repo, "packs"), key=lambda p: (len(list(iter_blocks(p.read_bytes()))), p.name))
    boff, blen = list(iter_blocks(pack.read_bytes()))[1]
    _flip(pack, boff + blen // 2)


def _delete_a_pack(repo: Path) -> None:
    _newest(repo, "packs").unlink()


def _delete_an_index_file(repo: Path) -> None:
    _newest(repo, "index").unlink()


def _flip_an_index_file(repo: Path) -> None:
    index = _newest(repo, "index")
    _flip(index, index.stat().st_size // 2)


def _flip_the_journal(repo: Path) -> None:
    entries = [p for p in _files(repo, "journal") if p.name.isdigit()]
    _flip(entries[-1], entries[-1].stat().st_size // 2)


def _flip_a_ref(repo: Path) -> None:
    """The ref's first line damaged: the record it holds still verifies."""
    [ref] = _files(repo, "refs/heads")
    lines = ref.read_bytes().split(b"\n")
    ref.write_bytes(b"\n".join([b"X" + lines[0][1:], *lines[1:]]))


def _flip_the_last_record(repo: Path) -> None:
    """The newest snapshot's record damaged (its ref holds it whole)."""
    [ref] = _files(repo, "refs/heads")
    last = next(ln for ln in ref.read_bytes().split(b"\n") if ln.startswith(b"last "))
    snap = last.split()[1].decode()
    _flip(repo / "snapshots" / snap[:2] / snap, 20)


# -- the commands ---------------------------------------------------------------------
SCENARIOS = [
    RepairScenario(
        "repair-packs-damaged",
        ["repair", "packs"],
        _flip_a_pack,
        says=r"1 damaged, 0 missing, [1-9][0-9]* objects salvaged",
        clean=False,
    ),
    RepairScenario(
        "repair-packs-missing",
        ["repair", "packs"],
        _delete_a_pack,
        says=r"0 damaged, 1 missing",
        clean=False,
    ),
    RepairScenario(
        "repair-index-deleted",
        ["repair", "index"],
        _delete_an_index_file,
        says=r"indexed [1-9][0-9]* objects",
    ),
    RepairScenario(
        "repair-index-damaged",
        ["repair", "index"],
        _flip_an_index_file,
        says=r"indexed [1-9][0-9]* objects .* removed 1 damaged",
    ),
    RepairScenario(
        "repair-journal", ["repair", "journal"], _flip_the_journal, says="journal written afresh"
    ),
    RepairScenario("repair-refs", ["repair", "refs"], _flip_a_ref, says="1 damaged refs repaired"),
    RepairScenario(
        "repair-refs-record",
        ["repair", "refs"],
        _flip_the_last_record,
        says="1 damaged snapshot records restored",
    ),
    RepairScenario(
        "sync-refill",
        ["sync", "{src}", "{repo}", "--refill"],
        _delete_a_pack,
        says=r"walked the 3 snapshots it held",
        replica=True,
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_killed_repair(
    scenario: RepairScenario, nights: list[Path], runner: Runner, tmp_path: Path
) -> None:
    run_repair(scenario, nights, runner, tmp_path)
