"""Nights of one course ingested at the same time form one history (issue 20, defect 7).

Each test runs one ingest inside another, at the moment the outer one's
session commits: deterministically, the interleaving that parallel ingests
meet by chance -- the outer night's objects are written before the inner
night exists, its commit comes after.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store import session as session_module
from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.repository import Repository

DAY = 86400
T0 = 1700000000


def _posts(night: int) -> dict[int, list[tuple[int, str]]]:
    """A forum that gains five posts a night, as real ones do."""
    words = " ".join(f"w{i * 7919 % 1000003}" for i in range(60))
    count = 300 + 5 * night
    return {1: [(100 + i, f"post {i}: {words}") for i in range(count)]}


def _night(write_course: Callable[..., Path], tmp_path: Path, night: int) -> Path:
    return write_course(tmp_path / f"night-{night}.mbz", _posts(night), T0 + night * DAY)


def _open(tmp_path: Path, cache: str = "cache") -> Repository:
    return Repository.open(LocalBackend(tmp_path / "repo"), cache_dir=tmp_path / cache)


def _during_commit(monkeypatch: pytest.MonkeyPatch, inner: Callable[[], Any]) -> None:
    """Run ``inner`` once, when the next write session starts to commit."""
    real = session_module.WriteSession.commit
    pending = [inner]

    def commit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if pending:
            pending.pop()()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(session_module.WriteSession, "commit", commit)


def _assert_exports(repo: Repository, tmp_path: Path, archives: dict[str, Path]) -> None:
    for snap, path in archives.items():
        out = tmp_path / f"out-{snap[:12]}.mbz"
        export_snapshot(repo, snap, str(out))
        assert gzip.decompress(out.read_bytes()) == gzip.decompress(path.read_bytes())
    assert check_repository(repo, read_data=True).ok


@pytest.mark.parametrize("other_host", [False, True], ids=["shared-catalog", "own-catalog"])
def test_a_night_committed_meanwhile_is_the_parent(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    other_host: bool,
    write_course: Callable[..., Path],
) -> None:
    """Night 3 is read while night 2 is ingested: night 2 commits first, so it
    is night 3's parent, and night 3 stores one night's growth."""
    Repository.init(LocalBackend(tmp_path / "repo"))
    repo = _open(tmp_path)
    n1 = ingest_archive(repo, str(_night(write_course, tmp_path, 1)))
    n2_path, n3_path = _night(write_course, tmp_path, 2), _night(write_course, tmp_path, 3)
    inner: list[Any] = []
    other = _open(tmp_path, "cache2" if other_host else "cache")
    _during_commit(monkeypatch, lambda: inner.append(ingest_archive(other, str(n2_path))))
    n3 = ingest_archive(repo, str(n3_path))
    [n2] = inner

    rows = {r.id: r for r in repo.snapshots()}
    assert [r.id for r in repo.snapshots()] == [n1.snapshot, n2.snapshot, n3.snapshot]
    assert rows[n2.snapshot].record["parents"] == [n1.snapshot]
    assert rows[n3.snapshot].record["parents"] == [n2.snapshot]
    # one night's growth, not two: night 2's posts were stored by night 2
    assert n3.new_bytes < 2 * n2.new_bytes
    _assert_exports(repo, tmp_path, {n.snapshot: p for n, p in [(n2, n2_path), (n3, n3_path)]})


def test_a_night_is_not_stored_whole_when_its_parent_commits_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_course: Callable[..., Path]
) -> None:
    """Nights 1 and 2 start together on an empty repository; night 1 commits
    first.  Night 2 wrote the whole course before night 1 existed: at commit
    it names night 1 and keeps only what night 1 lacks."""
    Repository.init(LocalBackend(tmp_path / "repo"))
    repo = _open(tmp_path)
    n1_path, n2_path = _night(write_course, tmp_path, 1), _night(write_course, tmp_path, 2)
    inner: list[Any] = []
    other = _open(tmp_path, "cache2")
    _during_commit(monkeypatch, lambda: inner.append(ingest_archive(other, str(n1_path))))
    n2 = ingest_archive(repo, str(n2_path))
    [n1] = inner

    record = repo.read_snapshot(n2.snapshot)
    assert record["parents"] == [n1.snapshot]
    assert n2.new_bytes * 4 < n1.new_bytes
    assert record["stats"]["new_bytes"] == n2.new_bytes
    packs = sum(p.stat().st_size for p in (tmp_path / "repo" / "packs").rglob("*") if p.is_file())
    assert packs < 1.5 * n1.stored_bytes  # night 2's copy of night 1 was deleted
    _assert_exports(repo, tmp_path, {n1.snapshot: n1_path, n2.snapshot: n2_path})


def test_an_archive_ingested_again_meanwhile_is_a_snapshot_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_course: Callable[..., Path]
) -> None:
    """The same night twice at once: two snapshots (not one record written
    twice), the second following the first."""
    Repository.init(LocalBackend(tmp_path / "repo"))
    repo = _open(tmp_path)
    path = _night(write_course, tmp_path, 1)
    inner: list[Any] = []
    other = _open(tmp_path, "cache2")
    _during_commit(monkeypatch, lambda: inner.append(ingest_archive(other, str(path))))
    second = ingest_archive(repo, str(path))
    [first] = inner
    assert first.snapshot != second.snapshot
    assert [r.id for r in repo.snapshots()] == [first.snapshot, second.snapshot]
    assert repo.read_snapshot(second.snapshot)["parents"] == [first.snapshot]
    assert second.new_objects == 0  # nothing stored twice
    # the two wrote byte-identical packs: the second must not delete the first's
    _assert_exports(repo, tmp_path, {first.snapshot: path, second.snapshot: path})
