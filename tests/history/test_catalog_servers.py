"""The catalog on PostgreSQL and MariaDB (``--catalog URL``), as on SQLite:
ingest with its caches of cut members and checkpoints, export, check, prune.

The servers come from scripts/services (scripts/test starts them); run alone,
without its URLs, these tests skip and say why.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from coursevault import api
from coursevault.history.retention import Policy
from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.prune import prune_repository
from coursevault.store.repository import Repository
from coursevault.tree import xmlmember

SERVERS = {
    "postgresql": os.environ.get("COURSEVAULT_TEST_POSTGRES"),
    "mariadb": os.environ.get("COURSEVAULT_TEST_MARIADB"),
}
TABLES = [
    "cv_stored_inputs",
    "cv_inputs",
    "cv_objects",
    "cv_index_files",
    "cv_snapshots",
    "cv_refs",
    "cv_meta",
]


@pytest.fixture(params=sorted(SERVERS))
def catalog_url(request: pytest.FixtureRequest) -> str:
    url = SERVERS[request.param]
    if not url:
        pytest.skip(f"no {request.param} server: run scripts/test (it starts one)")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a catalog of an earlier run belongs to another repository
        for table in TABLES:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()
    return url


def test_a_course_history_with_a_server_catalog(
    catalog_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_course: Callable[..., Path],
) -> None:
    monkeypatch.setattr(xmlmember, "CHECKPOINT_EVERY", 2048)
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    repo = Repository.open(backend, cache_dir=tmp_path / "cache", catalog_url=catalog_url)
    posts = {d: [(d * 100 + i, f"post {d}.{i} " * 20) for i in range(8)] for d in range(1, 30)}
    nights = []
    for night in range(3):
        posts[29].append((9000 + night, f"new on night {night}"))
        nights.append(write_course(tmp_path / f"n{night}.mbz", posts, 1700000000 + night * 86400))
    results = [ingest_archive(repo, str(p)) for p in nights]
    assert results[1].xml_reused == 0 and results[1].xml_resumed_bytes > 20_000
    again = ingest_archive(repo, str(nights[2]))  # every member known
    assert again.xml_reused == again.xml_files and again.new_objects == 0
    for path, result in zip(nights, results, strict=True):
        out = tmp_path / f"{result.snapshot[:8]}.mbz"
        export_snapshot(repo, result.snapshot, str(out))
        assert gzip.decompress(out.read_bytes()) == gzip.decompress(path.read_bytes())
    removed = [r for r in api.forget(repo, Policy(last=2), course=None) if r["action"] == "remove"]
    assert sorted(r["id"] for r in removed) == sorted(r.snapshot for r in results[:2])
    assert prune_repository(repo).snapshots == 2  # night 3 and its repeat
    assert check_repository(repo, read_data=True).ok  # the catalog, rebuilt by prune
    out = tmp_path / "after-prune.mbz"
    export_snapshot(repo, results[2].snapshot, str(out))
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(nights[2].read_bytes())
    repo.close()


def test_a_server_catalog_waits_on_a_large_forget(
    catalog_url: str, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    """A forget journals the removal of a batch (up to 4,096 snapshots)
    before it deletes their files; a catalog reading the entry meanwhile
    keeps their names waiting in cv_meta -- 280 kB, which MariaDB's TEXT
    refused (error 1406), and the journal position, saved apart, moved on
    without them, so the rows stayed for good."""
    from coursevault.store.catalog_sync import journal_files
    from coursevault.store.ids import ObjectType, object_id
    from coursevault.store.journal import SNAPSHOT
    from coursevault.store.series import encode_record

    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    forgetter = Repository.open(backend, cache_dir=tmp_path / "forgetter")
    first = ingest_archive(forgetter, str(write_course(tmp_path / "n.mbz", {1: [(1, "p")]}, 1)))
    record = forgetter.read_snapshot(first.snapshot)
    copies = []
    for i in range(1200):  # record copies under new course keys: 82 kB of waiting names
        data = encode_record({**record, "course": f"k{i:05d}", "parents": []})
        copies.append(object_id(ObjectType.SNAPSHOT, data).hex())
        backend.write(forgetter.record_key(copies[-1]), data)
    journal_files(forgetter, added=[(SNAPSHOT, n) for n in copies])
    server = Repository.open(backend, cache_dir=tmp_path / "server", catalog_url=catalog_url)
    assert len(server.snapshots()) == 1201
    journal_files(forgetter, removed=[(SNAPSHOT, n) for n in copies])  # then killed
    server.sync_catalog()
    assert len(server.snapshots()) == 1201  # their files are still there
    for name in copies:  # the re-run's deletes
        backend.delete(forgetter.record_key(name))
    server.sync_catalog()
    assert [s.id for s in server.snapshots()] == [first.snapshot]
    assert check_repository(server).ok
    server.close()
    forgetter.close()


def test_an_older_mariadb_catalog_gets_room_for_waiting_names(tmp_path: Path) -> None:
    catalog_url = SERVERS["mariadb"]
    if not catalog_url:
        pytest.skip("no mariadb server: run scripts/test (it starts one)")
    engine = sa.create_engine(catalog_url)
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    Repository.open(backend, cache_dir=tmp_path / "c", catalog_url=catalog_url).close()
    query = sa.text(
        "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
        " AND TABLE_NAME = 'cv_meta' AND COLUMN_NAME = 'value'"
    )
    with engine.begin() as conn:
        assert conn.execute(query).scalar() == "longtext"
        conn.execute(sa.text("ALTER TABLE cv_meta MODIFY value TEXT"))  # as made before
    Repository.open(backend, cache_dir=tmp_path / "c", catalog_url=catalog_url).close()
    with engine.begin() as conn:
        assert conn.execute(query).scalar() == "longtext"
    engine.dispose()


def test_snapshots_a_minute_apart_keep_their_order_and_times(
    catalog_url: str, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    """MariaDB's FLOAT (sa.Float) kept 2023's epochs to 128 s: three backups
    a minute apart tied, so history, selectors and parents went by id.  A
    catalog made so is widened and its epochs read again from the records."""
    from coursevault.history.selectors import resolve

    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    repo = Repository.open(backend, cache_dir=tmp_path / "cache", catalog_url=catalog_url)
    t0 = 1700000000 + 0.25
    made = []
    for night in range(3):
        posts = {1: [(10 + i, f"post {i}") for i in range(night + 1)]}
        path = write_course(tmp_path / f"n{night}.mbz", posts, date=int(t0) + 60 * night)
        made.append(ingest_archive(repo, str(path), course="c").snapshot)
    assert [s.id for s in repo.snapshots("c")] == made
    assert resolve(repo, "c@2023-11-14T22:14:30Z").id == made[1]
    assert check_repository(repo).ok
    repo.close()
    if not catalog_url.startswith("mysql"):
        return
    engine = sa.create_engine(catalog_url)
    with engine.begin() as conn:  # as an earlier version made it
        conn.execute(sa.text("ALTER TABLE cv_snapshots MODIFY epoch FLOAT NOT NULL"))
        rounded = {r[0] for r in conn.execute(sa.text("SELECT epoch FROM cv_snapshots"))}
        assert len(rounded) < 3  # what the bug was
    repo = Repository.open(backend, cache_dir=tmp_path / "cache", catalog_url=catalog_url)
    assert [s.id for s in repo.snapshots("c")] == made
    assert [s.epoch for s in repo.snapshots("c")] == [int(t0) + 60.0 * n for n in range(3)]
    repo.close()
    engine.dispose()
