"""``--wait[=SECONDS]``: a command queues behind a lock instead of failing with exit 11.

The lock is held by this test (a live process: ours) and released by a
background thread after a moment.  No bound here is tight: only "it waited"
and "it gave up, not much later than asked".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import CORPUS

from coursevault.store.backend import LocalBackend
from coursevault.store.locks import Lock
from coursevault.store.repository import Repository

SMALL = min(CORPUS, key=lambda p: p.stat().st_size)


@pytest.fixture
def bare(cv, tmp_path: Path) -> str:
    path = str(tmp_path / "repo")
    assert cv("init", path).code == 0
    return path


@pytest.fixture
def repo(cv, bare: str) -> str:
    for day in ("01", "02", "03"):
        r = cv("ingest", "-r", bare, "--time", f"2026-11-{day}T02:00", str(SMALL))
        assert r.code == 0, r.err
    return bare


@contextmanager
def held(repo: str, release_after: float | None, then: object = None) -> Iterator[Lock]:
    """An exclusive lock on ``repo``, released by a thread ``release_after``
    seconds from now (None: when the block ends), after calling ``then``."""
    lock = Lock(LocalBackend(Path(repo)), True, "test-holder").acquire()
    timer = None
    if release_after is not None:

        def release() -> None:
            if callable(then):
                then()
            lock.release()

        timer = threading.Timer(release_after, release)
        timer.start()
    try:
        yield lock
    finally:
        if timer is not None:
            timer.join()
        lock.release()


COMMANDS = {
    "ingest": ["ingest", "--wait", str(SMALL)],  # --wait alone, right before an argument
    "export": ["export", "--wait", "-o", "{tmp}/out.mbz", "{snap}"],
    "check": ["check", "--read-data", "--wait"],
    "forget": ["forget", "--all", "--keep-last", "5", "--wait=600"],
    "prune": ["prune", "--wait=600"],
    "index rebuild": ["index", "rebuild", "--wait"],
    "repair index": ["repair", "index", "--wait"],
    "repair packs": ["repair", "packs", "--wait=600"],
}


def argv_for(command: str, repo: str, snap: str, tmp: Path, wait: bool) -> list[str]:
    argv = [a.format(snap=snap, tmp=tmp) for a in COMMANDS[command]]
    if not wait:
        argv = [a for a in argv if not a.startswith("--wait")]
    return ["-r", repo, *argv]


def newest(cv, repo: str) -> str:
    return str(json.loads(cv("snapshots", "-r", repo, "--json").out)[-1]["id"])


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_locked_repository_fails_with_11_or_is_waited_for(
    cv, repo: str, tmp_path: Path, command: str
) -> None:
    snap = newest(cv, repo)
    with held(repo, release_after=None):
        r = cv(*argv_for(command, repo, snap, tmp_path, wait=False))
    assert r.code == 11, (r.out, r.err)
    assert "exclusive lock by test-holder" in r.err and len(r.err.strip().splitlines()) == 1

    with held(repo, release_after=0.3) as lock:
        r = cv(*argv_for(command, repo, snap, tmp_path, wait=True))
        assert r.code == 0, r.err
        assert not lock._held  # it ran once the holder had let go


def test_a_wait_with_a_limit_gives_up_with_11(cv, bare: str) -> None:
    with held(bare, release_after=None):
        start = time.monotonic()
        r = cv("-r", bare, "prune", "--wait=1")
        took = time.monotonic() - start
    assert r.code == 11
    assert "exclusive lock by test-holder" in r.err and "waited 1 s" in r.err
    assert 0.9 <= took < 30


@pytest.mark.parametrize("value", ["-1", "nan", "soon"])
def test_a_bad_wait_is_a_usage_error(cv, bare: str, value: str) -> None:
    r = cv("-r", bare, "prune", f"--wait={value}")
    assert r.code == 2 and r.err.startswith("coursevault: error:") and "wait" in r.err


def test_forget_decides_once_it_holds_the_lock(cv, repo: str, tmp_path: Path) -> None:
    """Another forget removes the newest snapshot while this one waits: deciding
    on the three seen before the wait would remove the oldest too, and leave
    one snapshot where the policy keeps two."""
    snaps = json.loads(cv("snapshots", "-r", repo, "--json").out)
    backend = LocalBackend(Path(repo))

    def other_forget() -> None:  # what another forget does (the head stops naming it too)
        with Repository.open(backend, cache_dir=tmp_path / "other") as other:
            other.delete_snapshot(snaps[-1]["id"])

    with held(repo, release_after=0.3, then=other_forget):
        r = cv("-r", repo, "forget", snaps[0]["course"], "--keep-last", "2", "--wait", "--json")
    assert r.code == 0, r.err
    assert [x["action"] for x in json.loads(r.out)] == ["keep", "keep"]
    left = [s["id"] for s in json.loads(cv("snapshots", "-r", repo, "--json").out)]
    assert left == [s["id"] for s in snaps[:2]]
