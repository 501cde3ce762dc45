"""What every bad-input test asserts: exit 2, one line on stderr naming the
archive as the user gave it (and the member, where known), and nothing of it
left in the repository -- no snapshot, pack, index or temporary file, and a
``check`` with neither errors nor warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coursevault.cli.app import main


def repository_files(repo: Path) -> list[Path]:
    """Every file of the repository but its locks (a command takes and drops them)."""
    return sorted(p.relative_to(repo) for p in repo.rglob("*") if "locks" not in p.parts)


def assert_check_clean(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = main(["check", "-r", str(repo), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["errors"] == 0 and report["warnings"] == 0, report


def assert_refused(
    repo: Path,
    archive: str,
    capsys: pytest.CaptureFixture[str],
    message: str,
    member: str | None = None,
) -> str:
    """Ingest ``archive`` (a path as a user types it) and check it was refused
    cleanly; returns the error line."""
    before = repository_files(repo)
    capsys.readouterr()
    code = main(["ingest", "-r", str(repo), archive])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    where = f"coursevault: error: {archive}: " + (f"{member}: " if member else "")
    assert err.startswith(where), f"{err!r} does not start with {where!r}"
    assert message in err, err
    assert "internal error" not in err and "Traceback" not in err
    assert repository_files(repo) == before  # nothing of the bad archive was left behind
    assert_check_clean(repo, capsys)
    return err
