"""A course's series: history order, parents chosen under the head's swap, the head ref."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coursevault.errors import BackendError
from coursevault.store.backend import LocalBackend
from coursevault.store.ids import ObjectType
from coursevault.store.repository import Repository
from coursevault.store.series import SnapshotDraft


def _draft(root: bytes, epoch: float, course: str = "course-1") -> SnapshotDraft:
    def build(parents: list[str]) -> dict[str, Any]:
        return {
            "course": course,
            "time": "",
            "epoch": epoch,
            "root": root.hex(),
            "parents": parents,
        }

    return SnapshotDraft(course, epoch, build)


def _commit(repo: Repository, epoch: float, tag: str, course: str = "course-1") -> str:
    w = repo.writer()
    root = w.put_tree([w.put(ObjectType.BLOB, tag.encode())], b"root")
    snap = w.commit(_draft(root, epoch, course))
    assert snap is not None
    return snap


def _parents(repo: Repository, snap: str) -> list[str]:
    parents: list[str] = repo.read_snapshot(snap)["parents"]
    return parents


def test_a_snapshot_ingested_again_comes_after_the_one_it_repeats(repo, helpers) -> None:
    """Same time: the child follows its parent in history, whatever the ids
    say, so ``@latest`` and the next night's parent are the newer one."""
    first = helpers.make_snapshot(repo, 2, seed=0)
    for seed in range(1, 100):  # half of all pairs sort the child first by id
        record = dict(first.record, parents=[first.snap_id], source=seed)
        w = repo.writer()
        child = w.commit(record)
        assert child is not None
        if child < first.snap_id:
            break
        repo.delete_snapshot(child)
    assert [s.id for s in repo.snapshots("course-1")] == [first.snap_id, child]
    assert _commit(repo, 2000.0, "next") and _parents(repo, repo.snapshots()[-1].id) == [child]


def test_parent_is_the_newest_at_or_before_the_time(repo) -> None:
    n3 = _commit(repo, 3000.0, "n3")
    n1 = _commit(repo, 1000.0, "n1")  # arrives late: before n3 in history
    n2 = _commit(repo, 2000.0, "n2")
    n1_again = _commit(repo, 1000.0, "n1 again")
    assert _parents(repo, n3) == []
    assert _parents(repo, n1) == []
    assert _parents(repo, n2) == [n1]
    assert _parents(repo, n1_again) == [n1]
    assert [s.id for s in repo.snapshots()] == [n1, n1_again, n2, n3]
    assert _commit(repo, 4000.0, "n4") and _parents(repo, repo.snapshots()[-1].id) == [n3]


def test_a_lost_race_retries_with_the_right_parent(
    repo, backend, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer commits night 2 between our read of the head and our
    swap: the swap fails, and the retry names night 2."""
    n1 = _commit(repo, 1000.0, "n1")
    other = Repository.open(LocalBackend(backend.root), cache_dir=cache_dir.parent / "other")
    real = LocalBackend.compare_and_swap
    raced: list[str] = []

    def racing(self: LocalBackend, key: str, expected: bytes | None, data: bytes) -> bool:
        if not raced and self is backend:
            raced.append(_commit(other, 2000.0, "n2"))
        return real(self, key, expected, data)

    monkeypatch.setattr(LocalBackend, "compare_and_swap", racing)
    n3 = _commit(repo, 3000.0, "n3")
    [n2] = raced
    assert _parents(repo, n2) == [n1]
    assert _parents(repo, n3) == [n2]
    assert backend.read("refs/heads/course-1").split(b"\n")[0].decode() == n3


def _crash_after_swap(repo: Repository, backend: LocalBackend, monkeypatch: Any) -> None:
    """Commit night 2, dying between the head's swap and the snapshot file."""
    real = LocalBackend.write

    def dying(self: LocalBackend, key: str, data: Any) -> None:
        if key.startswith("snapshots/"):
            raise BackendError("killed")
        real(self, key, data)

    with monkeypatch.context() as m:
        m.setattr(LocalBackend, "write", dying)
        with pytest.raises(BackendError):
            _commit(repo, 2000.0, "n2")
    assert len(list(backend.list("snapshots/"))) == 1  # night 1 only


def test_a_commit_killed_after_the_swap_is_published_by_the_next_writer(
    repo, backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    n1 = _commit(repo, 1000.0, "n1")
    _crash_after_swap(repo, backend, monkeypatch)
    n3 = _commit(repo, 3000.0, "n3")
    [n2] = [s.id for s in repo.snapshots() if s.id not in (n1, n3)]
    assert _parents(repo, n2) == [n1] and _parents(repo, n3) == [n2]


def test_a_commit_killed_after_the_swap_is_published_before_prune(
    repo, backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its objects are indexed but no snapshot file names them yet: prune
    must see the snapshot, or it would free them."""
    from coursevault.store.check import check_repository
    from coursevault.store.prune import prune_repository

    _commit(repo, 1000.0, "n1")
    _crash_after_swap(repo, backend, monkeypatch)
    prune_repository(repo)
    assert len(repo.snapshots()) == 2
    assert check_repository(repo, read_data=True).ok


def test_a_forgotten_snapshot_is_not_published_again(repo, backend) -> None:
    n1 = _commit(repo, 1000.0, "n1")
    n2 = _commit(repo, 2000.0, "n2")
    with repo.lock(exclusive=True, operation="forget"):
        repo.delete_snapshot(n2)  # the head's last commit
    assert backend.read("refs/heads/course-1") == n1.encode() + b"\n"
    n3 = _commit(repo, 3000.0, "n3")
    assert [s.id for s in repo.snapshots()] == [n1, n3]
    assert _parents(repo, n3) == [n1]
    with repo.lock(exclusive=True, operation="forget"):
        repo.delete_snapshot(n1)
        repo.delete_snapshot(n3)
    assert not backend.exists("refs/heads/course-1")


def test_a_forget_after_a_commit_killed_after_the_swap_decides_on_it_too(
    repo, backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exclusive lock publishes the dead writer's snapshot; forget, which
    decides on the catalog, must count it (it kept night 1 and night 2 for
    ``--keep-last 1``)."""
    from coursevault import api
    from coursevault.history.retention import Policy

    _commit(repo, 1000.0, "n1")
    _crash_after_swap(repo, backend, monkeypatch)
    rows = api.forget(repo, Policy(last=1))
    assert [r["action"] for r in rows] == ["keep", "remove"]
    repo.sync_catalog()
    [kept] = repo.snapshots()
    assert kept.epoch == 2000.0


def test_a_forget_killed_after_deleting_the_heads_last_commit_does_not_bring_it_back(
    repo, backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The head stops holding the record before the file goes: deleted the
    other way round, a forget killed in between left a record that the next
    exclusive lock published again (found by tests/store/test_crash.py)."""
    n1 = _commit(repo, 1000.0, "n1")
    n2 = _commit(repo, 2000.0, "n2")  # the head's last commit
    real = LocalBackend.delete

    def dying(self: LocalBackend, key: str) -> None:
        real(self, key)
        if key.startswith("snapshots/"):
            raise BackendError("killed")

    with monkeypatch.context() as m, repo.lock(exclusive=True, operation="forget"):
        m.setattr(LocalBackend, "delete", dying)
        with pytest.raises(BackendError):
            repo.delete_snapshot(n2)
    with repo.lock(exclusive=True, operation="prune"):  # publishes what a head holds
        pass
    repo.sync_catalog()
    assert [s.id for s in repo.snapshots()] == [n1]
    assert not backend.exists(repo.record_key(n2))


def test_a_commit_waits_for_the_writer_committing_to_its_course(
    repo, backend, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writer A has reserved the course (it is dropping what others stored
    and writing its index): B waits, then follows A's snapshot."""
    from coursevault.store import series

    n1 = _commit(repo, 1000.0, "n1")
    other = Repository.open(LocalBackend(backend.root), cache_dir=cache_dir.parent / "other")
    a = other.writer()
    root_a = a.put_tree([a.put(ObjectType.BLOB, b"n2")], b"root")
    series.reserve(other, "course-1", a._lock.key)
    done: list[str | None] = []

    def sleep(_seconds: float) -> None:  # B waits: A goes on meanwhile
        if not done:
            done.append(a.commit(_draft(root_a, 2000.0)))

    monkeypatch.setattr(series.time, "sleep", sleep)
    n3 = _commit(repo, 3000.0, "n3")
    [n2] = done
    assert n2 is not None
    assert _parents(repo, n2) == [n1] and _parents(repo, n3) == [n2]
    assert b"committing" not in backend.read("refs/heads/course-1")


def test_a_dead_writers_reservation_is_taken_over(
    repo, backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coursevault.store import series

    n1 = _commit(repo, 1000.0, "n1")
    series.reserve(repo, "course-1", "locks/" + "0" * 32)  # its lock is gone
    monkeypatch.setattr(series.time, "sleep", lambda _s: pytest.fail("waited for the dead"))
    n2 = _commit(repo, 2000.0, "n2")
    assert _parents(repo, n2) == [n1]
