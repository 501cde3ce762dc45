"""The Python API a user can script against; the CLI is a thin layer over it.

Everything here takes explicit arguments (locations, cache folders, catalog
URLs): reading the environment is the CLI's job alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from coursevault.errors import BadInputError, NoRepositoryError
from coursevault.store.backend import Backend, LocalBackend
from coursevault.store.check import CheckReport, check_repository
from coursevault.store.locks import LockInfo, remove_stale_locks
from coursevault.store.repository import Repository


def backend_for(location: str) -> Backend:
    """Choose the backend for a repository location (a folder path for now)."""
    if not location:
        raise BadInputError("no repository given: use --repo/-r or set COURSEVAULT_REPO")
    if "://" in location:
        scheme = location.split("://", 1)[0]
        raise BadInputError(f"repository location scheme {scheme!r} is not supported yet")
    return LocalBackend(os.path.abspath(location))


def init_repository(location: str, **options: Any) -> dict[str, Any]:
    return Repository.init(backend_for(location), **options)


def open_repository(
    location: str, *, cache_dir: str | None = None, catalog_url: str | None = None
) -> Repository:
    return Repository.open(backend_for(location), cache_dir=cache_dir, catalog_url=catalog_url)


def repository_stats(repo: Repository) -> dict[str, Any]:
    return repo.stats()


def check(
    repo: Repository, *, read_data: bool = False, progress: Callable[[int, int], None] | None = None
) -> CheckReport:
    with repo.lock(exclusive=False, operation="check"):
        return check_repository(repo, read_data=read_data, progress=progress)


def rebuild_index(repo: Repository) -> dict[str, int]:
    return repo.rebuild_catalog()


def unlock(location: str, *, remove_all: bool = False) -> list[LockInfo]:
    """Remove stale locks (or all, when the user is sure nothing runs)."""
    backend = backend_for(location)
    if not backend.exists("config"):
        raise NoRepositoryError(f"no repository at {backend.location()}")
    return remove_stale_locks(backend, remove_all=remove_all)
