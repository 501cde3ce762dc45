"""``check`` while another process commits: what that writer adds between
check's listing and its reading of the journal is not an error (before, it
was 'the journal names snapshot X, which is not there' and 'catalog rows
differ', exit 1, on a sound repository)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from coursevault.snapshot.ingest import ingest_archive
from coursevault.store import journal_check
from coursevault.store.check import check_repository
from coursevault.store.repository import Repository

T0 = 1700000000


def test_a_commit_between_the_listing_and_the_journal_is_no_error(
    cv_repo: Repository,
    tmp_path: Path,
    write_course: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = write_course(tmp_path / "n0.mbz", {1: [(10, "post")]}, date=T0)
    ingest_archive(cv_repo, str(first), course="c")
    later = write_course(tmp_path / "n1.mbz", {1: [(10, "post"), (11, "new")]}, date=T0 + 60)
    other = Repository.open(cv_repo.backend, cache_dir=tmp_path / "other-cache")
    listed = journal_check.index_names

    def listing_then_a_commit(*args: object) -> list[str]:
        names = listed(*args)  # type: ignore[arg-type]
        ingest_archive(other, str(later), course="c")  # another writer, right after
        return names

    monkeypatch.setattr(journal_check, "index_names", listing_then_a_commit)
    report = check_repository(cv_repo)
    assert report.ok, [p.message for p in report.problems]
    monkeypatch.undo()
    assert check_repository(cv_repo).ok and len(cv_repo.snapshots("c")) == 2
    other.close()
