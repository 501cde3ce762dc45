"""forget + prune frees space, never loses a kept snapshot, and survives being killed."""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from coursevault import api
from coursevault.errors import CoursevaultError, LockHeldError
from coursevault.history.retention import Policy
from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.prune import prune_repository
from coursevault.store.repository import Repository


def _nights(
    write_course: Callable[..., Path], repo: Repository, tmp_path: Path, n: int
) -> list[tuple[str, Path]]:
    out = []
    posts = {1: [(10, "first")]}
    for night in range(n):
        posts[1] = [*posts[1], (100 + night, f"post of night {night} " * 50)]
        path = write_course(tmp_path / f"n{night}.mbz", posts, date=1700000000 + night * 86400)
        out.append((ingest_archive(repo, str(path)).snapshot, path))
    return out


def settle(repo: Repository, depth: int) -> None:
    """Prune until nothing is left to free: at most one run per level of a
    dictionary chain (``depth``) and one more."""
    for _ in range(depth + 1):
        if prune_repository(repo).packs_deleted == 0:
            return
    again = prune_repository(repo)
    assert again.packs_deleted == 0 and again.bytes_freed == 0


def _same_export(repo: Repository, snap: str, original: Path, tmp: Path) -> bool:
    out = tmp / f"{snap[:8]}.mbz"
    export_snapshot(repo, snap, str(out))
    return gzip.open(out).read() == gzip.open(original).read()


@pytest.fixture
def small_packs(tmp_path: Path) -> Repository:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, pack_size=8 * 1024, block_size=2048, dictionary_depth=2)
    return Repository.open(backend, cache_dir=tmp_path / "cache")


def test_forget_and_prune_free_space_and_keep_the_rest(
    small_packs: Repository, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    repo = small_packs
    nights = _nights(write_course, repo, tmp_path, 8)
    course = repo.snapshots()[0].series
    before = repo.stats()["pack_bytes"]
    rows = api.forget(repo, Policy(last=2), course=course)
    assert sum(r["action"] == "remove" for r in rows) == 6
    report = prune_repository(repo)
    assert report.bytes_freed > 0 and report.packs_deleted + report.packs_repacked > 0
    assert repo.stats()["pack_bytes"] < before
    assert check_repository(repo, read_data=True).ok
    for snap, path in nights[-2:]:
        assert _same_export(repo, snap, path, tmp_path)
    # each later prune may free one more level of the dictionaries kept only
    # for blocks the one before repacked (docs/format.md); then it settles
    settle(repo, 2)


@pytest.mark.parametrize("die_after", [0, 1, 3, 7])
def test_prune_killed_midway_loses_nothing(
    small_packs: Repository,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    die_after: int,
    write_course: Callable[..., Path],
) -> None:
    repo = small_packs
    nights = _nights(write_course, repo, tmp_path, 8)
    api.forget(repo, Policy(last=3), course=repo.snapshots()[0].series)
    real_delete = LocalBackend.delete
    calls = 0

    class Killed(Exception):
        pass

    def dying_delete(self: LocalBackend, key: str) -> None:
        nonlocal calls
        if key.startswith("locks/"):
            return real_delete(self, key)
        if calls >= die_after:
            raise Killed(key)
        calls += 1
        real_delete(self, key)

    monkeypatch.setattr(LocalBackend, "delete", dying_delete)
    with pytest.raises(Killed):
        prune_repository(repo)
    monkeypatch.setattr(LocalBackend, "delete", real_delete)
    for lock in list(repo.backend.list("locks/")):  # the "killed" process left its lock
        repo.backend.delete(lock[0])

    fresh = Repository.open(repo.backend, cache_dir=tmp_path / "cache2")
    assert check_repository(fresh, read_data=True).ok
    for snap, path in nights[-3:]:
        assert _same_export(fresh, snap, path, tmp_path)
    prune_repository(fresh)  # the rerun finishes the job
    report = check_repository(fresh, read_data=True)
    assert report.ok and not report.problems


def test_a_prune_killed_before_its_index_keeps_the_packs_its_rerun_writes_again(
    small_packs: Repository,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_course: Callable[..., Path],
) -> None:
    """A killed prune leaves its repacked packs unindexed; the rerun repacks
    the same objects into the same bytes, so the same pack ids, and must not
    delete them as the leftovers they were when it started (found by
    tests/store/test_crash.py)."""
    repo = small_packs
    nights = _nights(write_course, repo, tmp_path, 8)
    api.forget(repo, Policy(last=3), course=repo.snapshots()[0].series)
    real_write = LocalBackend.write

    class Killed(Exception):
        pass

    def dying_write(self: LocalBackend, key: str, data: bytes | bytearray | memoryview) -> None:
        if key.startswith("index/"):
            raise Killed(key)
        real_write(self, key, data)

    monkeypatch.setattr(LocalBackend, "write", dying_write)
    with pytest.raises(Killed):
        prune_repository(repo)
    monkeypatch.setattr(LocalBackend, "write", real_write)
    leftovers = check_repository(repo).problems
    assert leftovers and all("not named by any index" in p.message for p in leftovers)

    report = prune_repository(repo)
    assert report.packs_written > 0
    check = check_repository(repo, read_data=True)
    assert check.ok and not check.problems, check.problems
    for snap, path in nights[-3:]:
        assert _same_export(repo, snap, path, tmp_path)


def test_prune_waits_for_no_writer(small_packs: Repository, tmp_path: Path) -> None:
    session = small_packs.writer()
    try:
        with pytest.raises(LockHeldError):
            prune_repository(small_packs)
    finally:
        session.abort()


def test_a_prune_with_nothing_to_free_leaves_the_index_alone(
    cv_repo: Repository, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    _nights(write_course, cv_repo, tmp_path, 3)
    index = sorted(cv_repo.backend.list("index/"))
    report = prune_repository(cv_repo)
    assert report.bytes_freed == 0 and report.index_files_written == 0
    assert sorted(cv_repo.backend.list("index/")) == index


@pytest.mark.parametrize("packs", ["cv_repo", "small_packs"])
def test_a_dry_run_says_what_prune_frees(
    request: pytest.FixtureRequest, tmp_path: Path, packs: str, write_course: Callable[..., Path]
) -> None:
    repo: Repository = request.getfixturevalue(packs)
    _nights(write_course, repo, tmp_path, 6)
    api.forget(repo, Policy(last=2), course=repo.snapshots()[0].series)
    dry = prune_repository(repo, dry_run=True)
    real = prune_repository(repo)
    assert real.bytes_freed > 0
    # "4 repacked into 0" where prune then said "into 1": the count it would write
    counts = ("packs_deleted", "packs_repacked", "packs_written", "reachable_objects")
    assert [getattr(dry, c) for c in counts] == [getattr(real, c) for c in counts]
    if real.packs_repacked == 0:  # what stays and the new index: known exactly
        assert dry.bytes_freed == real.bytes_freed
    else:  # copies are compressed again: about the share of their packs
        assert abs(dry.bytes_freed - real.bytes_freed) <= 0.2 * real.bytes_freed


def test_a_dry_run_counts_the_packs_a_repack_writes(
    tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    """Each night keeps a new post and leaves a bigger one that the next
    replaces: forgetting all but the last night leaves every pack mostly
    garbage, and their survivors fill several small packs."""
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, pack_size=4096, block_size=1024, dictionary_depth=2)
    repo = Repository.open(backend, cache_dir=tmp_path / "cache")
    rng = random.Random(7)
    kept: list[tuple[int, str]] = [(10, "first")]
    for night in range(12):
        kept.append((100 + night, rng.randbytes(1000).hex()))
        replaced = [(5000 + night, rng.randbytes(6000).hex())]
        date = 1700000000 + night * 86400
        ingest_archive(repo, str(write_course(tmp_path / "n.mbz", {1: kept, 2: replaced}, date)))
    api.forget(repo, Policy(last=1), course=repo.snapshots()[0].series)
    dry = prune_repository(repo, dry_run=True)
    real = prune_repository(repo)
    assert real.packs_repacked > 1 and real.packs_written > 1
    assert (dry.packs_repacked, dry.packs_written) == (real.packs_repacked, real.packs_written)


def test_prune_never_reports_success_over_a_lost_pack(
    cv_repo: Repository, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    """Nothing is forgotten, but a pack the snapshots need was lost.  A process
    that has nothing of it cached stops, saying which object is missing; one
    that read every object lately still holds their blocks and copies the
    objects out of them.  Neither calls it 'nothing to do' and leaves the
    snapshots broken."""
    _nights(write_course, cv_repo, tmp_path, 2)
    # read twice: the first read walks the nights' dictionaries, and a walk
    # lets the blocks it decoded go (store/dictionaries.py)
    for _ in range(2):
        assert check_repository(cv_repo, read_data=True).ok
    pack = next(key for key, _size in cv_repo.backend.list("packs/"))
    cv_repo.backend.delete(pack)
    fresh = Repository.open(cv_repo.backend, cache_dir=tmp_path / "cache2")  # nothing cached
    with pytest.raises(CoursevaultError, match="is missing"):
        prune_repository(fresh)
    report = prune_repository(cv_repo)  # every block of the lost pack still in its cache
    assert report.packs_written == 1
    assert check_repository(
        Repository.open(cv_repo.backend, cache_dir=tmp_path / "cache3"), read_data=True
    ).ok


def test_prune_merges_small_packs_with_their_blocks_whole(
    cv_repo: Repository, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    """Every night is a pack of a few kB against a 16 MiB target: prune
    copies their blocks, dictionary-compressed as they are, into one pack,
    and a repository of one big pack reads, checks and exports the same."""
    nights = _nights(write_course, cv_repo, tmp_path, 5)
    packs = sorted(cv_repo.backend.list("packs/"))
    stored = sum(size for _key, size in packs)
    dry = prune_repository(cv_repo, dry_run=True, merge_min=2)
    report = prune_repository(cv_repo, merge_min=2)
    assert report.packs_merged == len(packs) == dry.packs_merged and report.packs_written == 1
    assert dry.packs_written == 1 and report.reachable_objects == dry.reachable_objects
    after = list(cv_repo.backend.list("packs/"))
    assert len(after) == 1 and len(list(cv_repo.backend.list("index/"))) == 1
    # blocks copied whole: no bigger than the packs they came from (less their headers)
    assert after[0][1] <= stored
    data = cv_repo.backend.read(after[0][0])
    assert data[4] == 2, "nights' blocks keep their dictionaries (pack version 2)"
    assert check_repository(cv_repo, read_data=True).ok
    for snap, path in nights:
        assert _same_export(cv_repo, snap, path, tmp_path)
    # a fresh catalog finds the same; one pack is left, so nothing more to merge
    fresh = Repository.open(cv_repo.backend, cache_dir=tmp_path / "fresh")
    assert check_repository(fresh, read_data=True).ok
    again = prune_repository(fresh, merge_min=2)
    assert again.packs_merged == 0 and again.index_files_written == 0


@pytest.mark.parametrize("value", ["-1", "-16"])
def test_a_negative_merge_min_is_refused(
    cv_repo: Repository, value: str, tmp_path: Path
) -> None:
    """--merge-min is a count (0: never merge); a negative one merged every
    small pack, as 1 would, while the help says nothing of it."""
    from coursevault.cli.app import main

    packs = sorted(cv_repo.backend.list("packs/"))
    repo = str(cv_repo.backend.location())
    argv = ["-r", repo, "--cache-dir", str(tmp_path / "cache"), "prune", "--merge-min", value]
    assert main(argv) == 2
    assert sorted(cv_repo.backend.list("packs/")) == packs
    with pytest.raises(api.UsageError, match="--merge-min"):
        api.prune(cv_repo, merge_min=int(value))
