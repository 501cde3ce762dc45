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
