"""A snapshot whose ref swap succeeded but whose own file could not be
written is committed: the command says so (not a plain failure a user
re-runs, storing the course twice), and the next writer writes the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import CORPUS

from coursevault.cli.app import main
from coursevault.errors import BackendError
from coursevault.store.backend import LocalBackend

SMALL = sorted(CORPUS, key=lambda p: p.stat().st_size)[:2]


def test_a_snapshot_file_not_written_is_said_committed_and_written_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = str(tmp_path / "repo")
    assert main(["init", repo]) == 0
    write = LocalBackend.write

    def refuse_snapshots(self: LocalBackend, key: str, data: bytes) -> None:
        if key.startswith("snapshots/"):
            raise BackendError(f"cannot write {key}: Permission denied", retryable=False)
        write(self, key, data)

    monkeypatch.setattr(LocalBackend, "write", refuse_snapshots)
    capsys.readouterr()
    assert main(["-r", repo, "ingest", "--course", "c", str(SMALL[0])]) == 1
    said = capsys.readouterr().err
    assert "is committed (its ref holds it), but its file was not written" in said, said
    assert "do not run this backup again" in said
    committed = said.split("snapshot ", 1)[1].split(" ", 1)[0]

    monkeypatch.setattr(LocalBackend, "write", write)
    assert main(["-r", repo, "ingest", "--course", "c", str(SMALL[1])]) == 0
    capsys.readouterr()
    assert main(["-r", repo, "snapshots", "--json"]) == 0
    ids = [row["id"] for row in json.loads(capsys.readouterr().out)]
    assert len(ids) == 2 and committed in [i[:12] for i in ids], (committed, ids)
    assert main(["-r", repo, "check", "--read-data"]) == 0
