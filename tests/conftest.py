"""Shared fixtures: the real corpus, and a fresh repository per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from coursevault.store.backend import LocalBackend
from coursevault.store.repository import Repository

CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "moodle"
if not CORPUS_DIR.is_dir():  # CI clones main with shared/ beside it; allow an override
    CORPUS_DIR = Path(os.environ.get("COURSEVAULT_CORPUS", CORPUS_DIR))
CORPUS = sorted(CORPUS_DIR.glob("*.mbz"))


def corpus_ids() -> list[str]:
    return [p.name.replace("_tests_fixtures_", ":")[:60] for p in CORPUS]


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
