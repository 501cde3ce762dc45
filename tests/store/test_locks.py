"""Repository locks: shared writers, exclusive deleters, stale-lock removal."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from coursevault.cli.app import main
from coursevault.errors import BadInputError, LockHeldError
from coursevault.store.backend import LocalBackend
from coursevault.store.locks import (
    FIRST_RETRY,
    LAST_RETRY,
    STALE_AFTER,
    Lock,
    LockInfo,
    list_locks,
    remove_stale_locks,
)
from coursevault.store.repository import Repository


@pytest.fixture
def lbackend(backend: LocalBackend) -> LocalBackend:
    Repository.init(backend)
    return backend


def lock_keys(backend: LocalBackend) -> set[str]:
    return {k for k, _ in backend.list("locks/")}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def write_lock(
    backend: LocalBackend,
    name: str,
    *,
    pid: int,
    host: str | None = None,
    exclusive: bool = False,
    age: float = 0.0,
) -> str:
    key = f"locks/{name}"
    backend.write(
        key,
        json.dumps(
            {
                "hostname": host or socket.gethostname(),
                "pid": pid,
                "exclusive": exclusive,
                "time": time.time() - age,
                "operation": "test",
            }
        ).encode(),
    )
    return key


# -- conflicts ----------------------------------------------------------------------------
def test_exclusive_fails_while_shared_held(lbackend) -> None:
    shared = Lock(lbackend, False, "backup").acquire()
    held = lock_keys(lbackend)
    with pytest.raises(LockHeldError, match="shared lock by backup"):
        Lock(lbackend, True, "prune").acquire()
    assert lock_keys(lbackend) == held  # the loser removed its own lock file
    shared.release()
    with Lock(lbackend, True, "prune").acquire():
        assert len(lock_keys(lbackend)) == 1
    assert lock_keys(lbackend) == set()


def test_shared_fails_while_exclusive_held(lbackend) -> None:
    with Lock(lbackend, True, "prune").acquire():
        with pytest.raises(LockHeldError, match="exclusive lock by prune"):
            Lock(lbackend, False, "backup").acquire()
        with pytest.raises(LockHeldError):
            Lock(lbackend, True, "forget").acquire()
        assert len(lock_keys(lbackend)) == 1
    Lock(lbackend, False, "backup").acquire().release()


def test_shared_and_shared_coexist(lbackend) -> None:
    a = Lock(lbackend, False, "backup").acquire()
    b = Lock(lbackend, False, "check").acquire()
    assert len(lock_keys(lbackend)) == 2
    a.release()
    b.release()
    b.release()  # idempotent
    assert lock_keys(lbackend) == set()


def test_live_lock_of_another_process_conflicts(lbackend) -> None:
    # another process on this host that is alive: our parent
    write_lock(lbackend, "parent", pid=os.getppid(), exclusive=False)
    with pytest.raises(LockHeldError):
        Lock(lbackend, True, "prune").acquire()
    # a recent lock from another host cannot be checked for liveness: it counts
    write_lock(lbackend, "parent", pid=1, host="elsewhere.invalid", exclusive=True)
    with pytest.raises(LockHeldError):
        Lock(lbackend, False, "backup").acquire()
    assert lock_keys(lbackend) == {"locks/parent"}


def test_write_session_takes_a_shared_lock(tmp_path, lbackend) -> None:
    with Repository.open(lbackend, cache_dir=tmp_path / "c") as repo:
        w = repo.writer()
        with pytest.raises(LockHeldError):
            Lock(lbackend, True, "prune").acquire()
        w2 = repo.writer()  # a second writer is fine
        w2.abort()
        w.abort()
        Lock(lbackend, True, "prune").acquire().release()


# -- waiting ------------------------------------------------------------------------------
class FakeTime:
    """A clock that moves only when slept on; ``then`` runs once it reaches ``at``."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.at = float("inf")
        self.then = lambda: None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds
        if self.now >= self.at:
            self.at = float("inf")
            self.then()


def test_waiting_takes_the_lock_once_its_holder_lets_go(lbackend) -> None:
    held = Lock(lbackend, True, "prune").acquire()
    t = FakeTime()
    t.at, t.then = 1030.0, held.release  # released 30 s into the wait
    lock = Lock(lbackend, False, "ingest").acquire(3600, sleep=t.sleep, clock=t.clock)
    assert lock.waited and lock_keys(lbackend) == {lock.key}
    # backing off: pauses grow (jittered) to at most LAST_RETRY, so 30 s is a few tries
    assert t.sleeps[0] <= FIRST_RETRY and max(t.sleeps) <= LAST_RETRY
    assert len(t.sleeps) < 15 and t.sleeps[-1] > t.sleeps[0]
    lock.release()


def test_waiting_gives_up_at_the_deadline_naming_the_holder(lbackend) -> None:
    held = Lock(lbackend, True, "prune").acquire()
    t = FakeTime()
    with pytest.raises(LockHeldError, match=r"exclusive lock by prune .*waited 60 s"):
        Lock(lbackend, False, "ingest").acquire(60, sleep=t.sleep, clock=t.clock)
    assert t.now == pytest.approx(1060.0)  # the last pause ends at the deadline, no later
    assert lock_keys(lbackend) == {held.key}  # it left no lock file behind
    held.release()


def test_no_wait_fails_at_once_and_a_negative_wait_is_refused(lbackend) -> None:
    held = Lock(lbackend, True, "prune").acquire()
    t = FakeTime()
    with pytest.raises(LockHeldError):
        Lock(lbackend, False, "ingest").acquire(sleep=t.sleep, clock=t.clock)
    assert t.sleeps == []
    for bad in (-1.0, float("nan")):
        with pytest.raises(BadInputError):
            Lock(lbackend, False, "ingest").acquire(bad)
    assert lock_keys(lbackend) == {held.key}
    held.release()


def test_waiting_for_ever_stops_at_a_holder_that_died(lbackend) -> None:
    write_lock(lbackend, "gone", pid=os.getppid(), exclusive=True)
    t = FakeTime()
    # the holder's process dies while we wait: its lock turns stale, ignored
    t.at = 1005.0
    t.then = lambda: write_lock(lbackend, "gone", pid=dead_pid(), exclusive=True) and None
    lock = Lock(lbackend, False, "ingest").acquire(float("inf"), sleep=t.sleep, clock=t.clock)
    assert lock.waited
    lock.release()


# -- staleness ----------------------------------------------------------------------------
def test_dead_pid_on_this_host_is_stale_and_ignored(lbackend) -> None:
    write_lock(lbackend, "dead", pid=dead_pid(), exclusive=True)
    [info] = list_locks(lbackend)
    assert info.is_stale()
    Lock(lbackend, True, "prune").acquire().release()  # a stale lock does not block


def test_old_lock_is_stale_on_any_host() -> None:
    now = time.time()
    old = LockInfo("locks/x", "elsewhere.invalid", 1, False, now - STALE_AFTER - 1, "backup")
    recent = LockInfo("locks/y", "elsewhere.invalid", 1, False, now - STALE_AFTER + 60, "backup")
    assert old.is_stale(now)
    assert not recent.is_stale(now)
    mine_old = LockInfo(
        "locks/z", socket.gethostname(), os.getpid(), False, now - STALE_AFTER - 1, "b"
    )
    assert mine_old.is_stale(now)
    mine = LockInfo("locks/w", socket.gethostname(), os.getpid(), False, now, "b")
    assert not mine.is_stale(now)


def test_refresh_keeps_a_lock_fresh(lbackend) -> None:
    lock = Lock(lbackend, False, "backup").acquire()
    before = lbackend.read(lock.key)
    lock.refresh()  # not due yet: nothing written
    assert lbackend.read(lock.key) == before
    # pretend the holder has not refreshed for too long (from another host: no pid check)
    record = json.loads(before)
    record.update(hostname="elsewhere.invalid", time=time.time() - STALE_AFTER - 10)
    lbackend.write(lock.key, json.dumps(record).encode())
    assert list_locks(lbackend)[0].is_stale()
    lock.refresh(force=True)
    assert not list_locks(lbackend)[0].is_stale()
    assert json.loads(lbackend.read(lock.key))["hostname"] == socket.gethostname()
    lock.release()
    assert lock_keys(lbackend) == set()


def test_remove_stale_locks_keeps_live_ones(lbackend) -> None:
    live = Lock(lbackend, False, "backup").acquire()
    foreign = write_lock(lbackend, "foreign", pid=1, host="elsewhere.invalid")
    dead = write_lock(lbackend, "dead", pid=dead_pid())
    old = write_lock(lbackend, "old", pid=1, host="elsewhere.invalid", age=STALE_AFTER + 5)
    lbackend.write("locks/garbage", b"{not json")
    removed = remove_stale_locks(lbackend)
    assert {lk.key for lk in removed} == {dead, old, "locks/garbage"}
    assert lock_keys(lbackend) == {live.key, foreign}
    assert {lk.key for lk in remove_stale_locks(lbackend, remove_all=True)} == {live.key, foreign}
    assert lock_keys(lbackend) == set()


@pytest.mark.parametrize(
    "fields",
    [{"pid": 2**40}, {"pid": -1}, {"pid": 0}, {"time": float("nan")}, {"time": float("inf")}],
)
def test_a_lock_no_process_writes_is_unreadable_and_stale(lbackend, fields) -> None:
    """A lock file of a shared repository is anyone's to write: a pid kill()
    cannot take was an internal error (OverflowError) at every command that
    locks, unlock included; a NaN time one at every command it blocked."""
    record = {"hostname": socket.gethostname(), "pid": 1, "exclusive": True,
              "time": time.time(), "operation": "test"}
    record.update(fields)
    lbackend.write("locks/odd", json.dumps(record).encode())
    [info] = list_locks(lbackend)
    assert info.operation == "unreadable" and info.is_stale()
    Lock(lbackend, True, "prune").acquire().release()
    assert [lk.key for lk in remove_stale_locks(lbackend)] == ["locks/odd"]


def test_a_lock_of_a_time_no_clock_gives_is_described(lbackend) -> None:
    write_lock(lbackend, "future", pid=1, host="elsewhere.invalid", exclusive=True, age=-1e300)
    with pytest.raises(LockHeldError, match="exclusive lock by test"):
        Lock(lbackend, False, "export").acquire()


# -- `coursevault unlock` ------------------------------------------------------------------
def test_unlock_command_removes_only_stale_locks(lbackend, capsys) -> None:
    live = Lock(lbackend, False, "backup").acquire()
    foreign = write_lock(lbackend, "foreign", pid=1, host="elsewhere.invalid", exclusive=True)
    dead = write_lock(lbackend, "dead", pid=dead_pid(), exclusive=True)
    old = write_lock(lbackend, "old", pid=os.getpid(), age=STALE_AFTER + 5)

    assert main(["unlock", "--repo", str(lbackend.root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {entry["lock"] for entry in out} == {dead, old}
    assert lock_keys(lbackend) == {live.key, foreign}

    assert main(["unlock", "--repo", str(lbackend.root)]) == 0
    assert "no stale locks" in capsys.readouterr().out
    assert lock_keys(lbackend) == {live.key, foreign}

    assert main(["unlock", "--repo", str(lbackend.root), "--remove-all"]) == 0
    assert lock_keys(lbackend) == set()


def test_unlock_without_repository(tmp_path, capsys) -> None:
    assert main(["unlock", "--repo", str(tmp_path / "nothing")]) == 10
    err = capsys.readouterr().err
    assert err.startswith("coursevault: error:") and "Traceback" not in err
