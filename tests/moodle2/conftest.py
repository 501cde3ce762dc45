"""A repository holding one good snapshot, built once per module and copied
per test: bad input must leave it exactly as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import CORPUS

from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.backend import LocalBackend
from coursevault.store.repository import Repository


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("seeded")
    backend = LocalBackend(base / "repo")
    Repository.init(backend)
    good = next(c for c in CORPUS if "moodle_311_quiz" in c.name)
    with Repository.open(backend, cache_dir=base / "cache") as repo:
        ingest_archive(repo, str(good))
    return base / "repo"


@pytest.fixture
def seeded_repo(seeded_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the template, a private cache, and ``tmp_path`` as the
    working folder (archives are given as relative paths, as users type them)."""
    repo = tmp_path / "repo"
    shutil.copytree(seeded_template, repo)
    monkeypatch.setenv("COURSEVAULT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return repo
