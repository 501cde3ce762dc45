"""A sync that waits for the source's lock sees what the destination's own
forget and prune did meanwhile.

``sync --wait`` opens both repositories (syncing both catalogs), then waits
for the source's lock.  A forget and prune at the destination in that time
deleted objects its catalog, read before, still named: sync skipped them as
there and published a snapshot lacking them, exit 0, and export failed.
"""

from __future__ import annotations

import threading
from pathlib import Path

from coursevault import api
from coursevault.history.retention import Policy
from coursevault.store.backend import LocalBackend
from coursevault.store.locks import Lock
from coursevault.store.replicate import sync_repositories
from coursevault.store.repository import Repository


def test_sync_after_waiting_sees_the_destinations_prune(
    tmp_path: Path, nights: dict[str, list[Path]]
) -> None:
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    api.init_repository(src)
    with api.open_repository(src, cache_dir=str(tmp_path / "c1")) as repo:
        for n, archive in enumerate(nights["quiz"], 1):
            api.ingest(repo, str(archive), course="K", when=f"2026-03-0{n}T02:00:00+00:00")
    api.sync(src, dst, cache_dir=str(tmp_path / "c1"))
    with api.open_repository(src, cache_dir=str(tmp_path / "c1")) as repo:
        # night 1's bytes again: what the destination's prune is about to delete
        api.ingest(repo, str(nights["quiz"][0]), course="K", when="2026-03-09T02:00:00+00:00")

    # the sync opens both sides (its catalogs synced now) ...
    source = Repository.open(LocalBackend(src), cache_dir=tmp_path / "c2")
    target = Repository.open(LocalBackend(dst), cache_dir=tmp_path / "c2")
    try:
        # ... and waits for the source, held by a slow prune of its own ...
        held = Lock(LocalBackend(src), True, "prune").acquire(0)
        release = threading.Timer(1.0, held.release)
        release.start()
        # ... while the destination forgets and prunes what it keeps no more
        with api.open_repository(dst, cache_dir=str(tmp_path / "c3")) as other:
            api.forget(other, Policy(last=1), course="K")
            assert api.prune(other).index_files_deleted  # objects gone from the index
        source.lock_wait = 30
        report = sync_repositories(source, target)
        release.join()
        # the new night, and the two the destination forgot (sync copies
        # what the destination lacks): all of them whole
        assert report.snapshots == 3
    finally:
        source.close()
        target.close()

    with api.open_repository(dst, cache_dir=str(tmp_path / "c4")) as repo:
        assert api.check(repo, read_data=True).ok
        for row in api.list_snapshots(repo):
            api.export(repo, row["id"], str(tmp_path / "out.mbz"))
