"""check, prune and forget --all in memory that does not grow with the
number of snapshots (issue 26): a site keeps millions.  Copies of one
snapshot record under new course keys make the snapshots (their files
written plainly: durability is not what is tested), journaled in one entry."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from coursevault import api
from coursevault.history.retention import Policy
from coursevault.store import catalog, scratch
from coursevault.store.catalog_sync import journal_files
from coursevault.store.check import check_repository
from coursevault.store.ids import ObjectType, object_id
from coursevault.store.journal import SNAPSHOT
from coursevault.store.prune import prune_repository
from coursevault.store.repository import Repository
from coursevault.store.series import encode_record

# bytes of peak a snapshot may add: check held 1,200 before; what is left is
# prune's journal checkpoint up to a part (65,536 names, 66 bytes each:
# docs/format.md 9) and the list of courses forget --all decides on
PER_SNAPSHOT = 200


def add_copies(repo: Repository, record: dict[str, object], start: int, n: int) -> None:
    names = []
    root = Path(repo.backend.root)  # type: ignore[attr-defined]
    for i in range(start, start + n):
        data = encode_record({**record, "course": f"k{i:05d}", "parents": []})
        snap_id = object_id(ObjectType.SNAPSHOT, data).hex()
        path = root / repo.record_key(snap_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        names.append((SNAPSHOT, snap_id))
    journal_files(repo, added=names)
    repo.sync_catalog()


def peak(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_check_prune_and_forget_hold_no_list_of_snapshots(
    repo: Repository, helpers: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # batches far smaller than the snapshots, as at a site's scale: what is
    # held is then a batch, and whatever grows with the snapshots shows
    monkeypatch.setattr(scratch, "BATCH", 32)
    monkeypatch.setattr(catalog, "STREAM_BATCH", 32)
    monkeypatch.setattr(api, "FORGET_BATCH", 32)
    made = helpers.make_snapshot(repo, 20)
    record = repo.read_snapshot(made.snap_id)
    commands: dict[str, Callable[[], object]] = {
        "check": lambda: check_repository(repo),
        "prune": lambda: prune_repository(repo),
        "forget --all": lambda: sum(1 for _ in api.iter_forget(repo, Policy(last=1))),
    }
    small, large = 150, 750
    for run in commands.values():  # what a first run allocates once (imports, caches)
        run()
    add_copies(repo, record, 0, small)
    before = {name: peak(run) for name, run in commands.items()}
    add_copies(repo, record, small, large - small)
    after = {name: peak(run) for name, run in commands.items()}
    assert check_repository(repo).snapshots == large + 1
    grown = {name: (after[name] - before[name]) / (large - small) for name in commands}
    assert all(g < PER_SNAPSHOT for g in grown.values()), grown
    folder = repo.scratch_folder
    assert folder is not None and not list(folder.glob("scratch-*")), "scratch files are removed"
