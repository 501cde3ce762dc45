"""Ingest's stored-input rows wait on disk and reach the catalog only once
the snapshot is committed; an abort writes none (snapshot/ingest.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from coursevault.snapshot import ingest
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.repository import Repository
from coursevault.store.session import WriteSession
from coursevault.store.stored_inputs import PendingInputs, StoredInputs

DISCUSSIONS = {d: [(100 * d + p, f"post {p} of discussion {d}") for p in range(3)]
               for d in range(1, 4)}


class _Seen(PendingInputs):
    """A spool that tells the test it was made, added to and closed."""

    made: ClassVar[list[_Seen]] = []

    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.made.append(self)

    def close(self) -> None:
        self.closed = True
        super().close()


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[_Seen]:
    monkeypatch.setattr(ingest, "PendingInputs", _Seen)
    _Seen.made = []
    return _Seen.made


def test_rows_come_from_the_spool_once_the_snapshot_is_committed(
    cv_repo: Repository, tmp_path: Path, write_course: Callable[..., Path],
    seen: list[_Seen], monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[bool, Any, int]] = []
    put = StoredInputs.put

    def watched(self: StoredInputs, snapshot: str, rows: Iterable[Any]) -> None:
        committed = snapshot in cv_repo.catalog.snapshot_ids()
        calls.append((committed, rows, len(list(rows))))
        put(self, snapshot, rows)

    monkeypatch.setattr(StoredInputs, "put", watched)
    result = ingest_archive(cv_repo, str(write_course(tmp_path / "a.mbz", DISCUSSIONS)))
    [(committed, rows, n)] = calls
    assert committed and rows is seen[0] and n >= 2  # forum.xml and moodle_backup.xml
    assert seen[0].closed
    # and the rows answer: the same archive again is taken whole, uncut
    again = ingest_archive(cv_repo, str(write_course(tmp_path / "b.mbz", DISCUSSIONS)))
    assert again.xml_reused == again.xml_files == result.xml_files


def test_an_abort_writes_no_rows(
    cv_repo: Repository, tmp_path: Path, write_course: Callable[..., Path],
    seen: list[_Seen], monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(self: WriteSession, draft: Any) -> str:
        raise OSError("the disk is full")

    monkeypatch.setattr(WriteSession, "commit", failing)
    with pytest.raises(OSError, match="disk is full"):
        ingest_archive(cv_repo, str(write_course(tmp_path / "a.mbz", DISCUSSIONS)))
    [spool] = seen
    assert len(spool) >= 2 and spool.closed  # rows were made, and dropped with the spool
    catalog = cv_repo.catalog.url.removeprefix("sqlite:///")
    with sqlite3.connect(catalog) as db:
        assert db.execute("SELECT COUNT(*) FROM cv_stored_inputs").fetchone() == (0,)
