"""Shared fixtures: the real corpus, and a fresh repository per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CORPUS, CORPUS_DIR

from coursevault.store.backend import LocalBackend
from coursevault.store.repository import Repository


@pytest.fixture
def cv_repo(tmp_path: Path) -> Iterator[Repository]:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    repo = Repository.open(backend, cache_dir=tmp_path / "cache")
    yield repo
    repo.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not CORPUS:
        raise pytest.UsageError(
            f"the Moodle corpus is missing: expected .mbz files in {CORPUS_DIR}"
        )
