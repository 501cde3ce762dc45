"""Output to a reader that went away (``coursevault ls ... | head -1``) is no error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CORPUS

SMALL = min(CORPUS, key=lambda p: p.stat().st_size)


def run_into_closed_pipe(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run coursevault with stdout a pipe whose reader is already gone: its
    first write meets EPIPE, as under ``| head -1`` once head has its line."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "coursevault.cli.app", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.fixture
def snapshot(cv, tmp_path: Path) -> tuple[str, str]:
    repo = str(tmp_path / "repo")
    assert cv("init", repo).code == 0
    r = cv("ingest", "-r", repo, "--json", str(SMALL))
    assert r.code == 0, r.err
    return repo, str(json.loads(r.out)["snapshot"])


@pytest.mark.parametrize(
    "argv",
    [
        ["ls", "{snap}"],  # printed through rich
        ["snapshots", "--json"],  # printed as JSON
        ["cat", "{snap}", "moodle_backup.xml"],  # bytes
        ["snapshots"],  # a table (plain lines, not a terminal)
    ],
    ids=["ls", "json", "cat", "table"],
)
def test_a_closed_pipe_exits_0_quietly(snapshot: tuple[str, str], argv: list[str]) -> None:
    repo, snap = snapshot
    done = run_into_closed_pipe("-r", repo, *(a.format(snap=snap) for a in argv))
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
