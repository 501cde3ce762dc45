"""Keeping the catalog, a cache, in step with the repository's files.

The repository's index and snapshot files are the truth; the catalog is
rebuilt from them whenever it cannot be trusted.  Three things must never
turn a readable repository into an unusable one (issue 20, defect 6):

* a damaged index file is skipped, with a notice naming it and the command
  that repairs it (``repair index`` rebuilds index files from the packs),
  while everything the other index files name stays readable;
* a file in ``index/`` whose name is not an index id (a stray file left by a
  person or a tool) is ignored with a notice;
* a SQLite catalog whose file is damaged is deleted and built again from the
  repository, with a notice: it holds nothing the repository does not.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from coursevault.errors import CatalogDamagedError, CorruptionError
from coursevault.store.backend import Backend
from coursevault.store.catalog import SQLITE_PREFIX, Catalog
from coursevault.store.snapshots import snapshot_row

if TYPE_CHECKING:
    from coursevault.store.repository import Repository

# index files are named by the BLAKE3 hash of their bytes, in hex
INDEX_NAME = re.compile(r"[0-9a-f]{64}")
# so are snapshot records
SNAPSHOT_NAME = INDEX_NAME


def index_names(backend: Backend, notice: Callable[[str], None]) -> list[str]:
    """The names of the index files in ``index/``, sorted; any other file
    there is reported through ``notice`` and left alone."""
    names = []
    for key, _size in backend.list("index/"):
        name = key.split("/", 1)[1]
        if INDEX_NAME.fullmatch(name):
            names.append(name)
        else:
            notice(f"ignoring {key}: not an index file (a stray file; remove it by hand)")
    return sorted(names)


def snapshot_names(backend: Backend) -> list[str]:
    """The names of the snapshot records (other files in ``snapshots/`` are not)."""
    return sorted(
        key.split("/", 1)[1]
        for key, _size in backend.list("snapshots/")
        if SNAPSHOT_NAME.fullmatch(key.split("/", 1)[1])
    )


def sync_catalog(repo: Repository) -> list[str]:
    """Bring the catalog up to date with the repository's index and snapshot
    files; return the names of the damaged index files it skipped."""
    catalog = repo.catalog
    # The catalog's view first, the listing second: a file another process
    # commits in between then shows up as new, never as "known but gone".
    known = catalog.index_files()
    listed = set(index_names(repo.backend, repo.notice))
    if known - listed:  # index files were removed (prune): start over
        catalog.clear_objects()
        known = set()
    damaged = []
    for name in sorted(listed - known):
        try:
            entries = repo.read_index(name)
        except CorruptionError as exc:
            repo.notice(f"{exc}: skipped (run `coursevault repair index`)")
            damaged.append(name)
            # a walk dictionary read while its objects cannot all be found
            # would differ from its writer's: keep none on disk meanwhile
            repo.disable_disk_dictionaries()
            continue
        catalog.add_index_file(name, entries)
    in_cat = catalog.snapshot_ids()
    snaps = set(snapshot_names(repo.backend))
    for gone in in_cat - snaps:
        catalog.remove_snapshot(gone)

    for snap_id in sorted(snaps - in_cat):
        try:
            row = snapshot_row(snap_id, repo.read_snapshot(snap_id))
        except (CorruptionError, KeyError, TypeError, ValueError):
            continue  # reported by check; never listed as a usable snapshot
        catalog.add_snapshot(row)
    return damaged


def sqlite_path(url: str) -> Path | None:
    """The file of a plain SQLite catalog URL (None for a server catalog)."""
    if url.startswith(SQLITE_PREFIX) and "?" not in url:
        return Path(url[len(SQLITE_PREFIX) :])
    return None


def remove_sqlite(path: Path) -> None:
    """Delete a SQLite database with its journal files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def open_catalog(url: str, notice: Callable[[str], None]) -> Catalog:
    """Open the catalog at ``url``; a damaged SQLite file is started afresh
    (the caller syncs it from the repository).  A server catalog is never
    dropped here: it may be shared, and its damage is for its owner to see."""
    catalog: Catalog | None = None
    try:
        catalog = Catalog(url)
        catalog.get_meta("repository")  # reads a page: a damaged file says so here
        return catalog
    except CatalogDamagedError as exc:
        path = sqlite_path(url)
        if path is None:
            raise
        if catalog is not None:
            with contextlib.suppress(Exception):
                catalog.close()
        reset_damaged(path, exc, notice)
        return Catalog(url)


def reset_damaged(path: Path, exc: CatalogDamagedError, notice: Callable[[str], None]) -> None:
    """Delete a damaged SQLite catalog, saying so once."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    notice(f"the catalog {path} was damaged ({cause}): rebuilding it from the repository")
    remove_sqlite(path)
