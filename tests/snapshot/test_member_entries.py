"""An ingest holds nothing per member until its commit: the members' entries
wait in a temporary file (snapshot/memberentries.py), not in memory, where
a database backup of a 13,000-member course kept 7.5 MB of them."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from helpers import MINIMAL_BACKUP, read_members, write_tgz

from coursevault.restore.export import export_snapshot
from coursevault.snapshot import ingest
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.backend import LocalBackend
from coursevault.store.repository import Repository


def _held_at_commit(tmp_path: Path, members: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Bytes traced as the archive's tree is about to be made, over those
    traced as the first member is stored: what storing ``members`` left."""
    archive = tmp_path / f"many-{members}.mbz"
    # the same content each: one object, so the store holds nothing per member
    write_tgz(archive, [("moodle_backup.xml", MINIMAL_BACKUP)]
              + [(f"files/{i:05d}/data.txt", b"same bytes") for i in range(members)])
    marks: list[int] = []
    store_members, put_archive = ingest._store_members, ingest._put_archive

    def first(*args: object) -> None:
        marks.append(tracemalloc.get_traced_memory()[0])
        store_members(*args)  # type: ignore[arg-type]

    def last(*args: object) -> object:
        marks.append(tracemalloc.get_traced_memory()[0])
        return put_archive(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest, "_store_members", first)
    monkeypatch.setattr(ingest, "_put_archive", last)
    repo_dir = tmp_path / f"repo-{members}"
    Repository.init(LocalBackend(repo_dir))
    tracemalloc.start()
    try:
        with Repository.open(LocalBackend(repo_dir), cache_dir=tmp_path / "cache") as repo:
            result = ingest_archive(repo, str(archive))
            out = tmp_path / f"out-{members}.mbz"
            export_snapshot(repo, result.snapshot, str(out))
    finally:
        tracemalloc.stop()
    assert read_members(out) == read_members(archive)
    return marks[1] - marks[0]


def test_storing_more_members_holds_no_more_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    few = _held_at_commit(tmp_path, 500, monkeypatch)
    many = _held_at_commit(tmp_path, 4500, monkeypatch)
    # 4,000 members more: 570 bytes each were 2.3 MB held in memory
    assert many - few < 4000 * 50, (few, many)
