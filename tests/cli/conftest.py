"""Fixtures for CLI tests: a private cache folder and a runner around ``main(argv)``."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from coursevault.cli.app import main


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """COURSEVAULT_CACHE (and XDG_CACHE_HOME, TMPDIR, as guards) point into tmp_path."""
    for var in ("COURSEVAULT_REPO", "COURSEVAULT_CATALOG", "COURSEVAULT_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "cache"
    monkeypatch.setenv("COURSEVAULT_CACHE", str(path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return path


@pytest.fixture
def cv(cache: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cv("stats", "--json")`` runs the command in-process and captures its output."""

    def run(*argv: str) -> Result:
        capsys.readouterr()  # drop anything printed before
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
