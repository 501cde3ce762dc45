"""What the disk cache adds (diskcache.py): immutable files read once come
from local disk afterwards, mutable ones never do, check bypasses it, and it
keeps to its capacity.  The contract suite runs on it too."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from s3server import S3Server

from coursevault import api
from coursevault.store.backend import LocalBackend
from coursevault.store.diskcache import DiskCache, bypassed
from coursevault.store.wrappers import CountingBackend


@pytest.fixture
def counted(tmp_path: Path) -> CountingBackend:
    backend = LocalBackend(tmp_path / "store")
    backend.write("packs/ab/ab01", bytes(range(200)))
    backend.write("index/0001", b"entries")
    backend.write("config", b"{}")
    return CountingBackend(backend)


def test_immutable_reads_are_served_from_disk_once_read(
    counted: CountingBackend, tmp_path: Path
) -> None:
    cache = DiskCache(counted, tmp_path / "cache")
    for _ in range(3):
        assert cache.read("packs/ab/ab01", 10, 5) == bytes(range(10, 15))
        assert cache.read("index/0001") == b"entries"
        assert cache.read("config") == b"{}"
    assert counted.calls == {"read packs": 1, "read index": 1, "read config": 3}
    # a whole file read once serves any range of it
    assert cache.read("packs/ab/ab01") == bytes(range(200))
    assert cache.read("packs/ab/ab01", 100, 3) == bytes(range(100, 103))
    assert counted.calls["read packs"] == 2
    # a new process (a new wrapper over the same folder) finds it all
    again = DiskCache(counted, tmp_path / "cache")
    assert again.read("packs/ab/ab01", 10, 5) == bytes(range(10, 15))
    assert counted.calls["read packs"] == 2 and again.hits == 1


def test_index_and_snapshots_written_through_are_kept(
    counted: CountingBackend, tmp_path: Path
) -> None:
    cache = DiskCache(counted, tmp_path / "cache")
    cache.write("snapshots/s1", b"record")
    cache.write("packs/cd/cd02", b"pack")
    assert cache.read("snapshots/s1") == b"record"
    assert cache.read("packs/cd/cd02") == b"pack"
    assert counted.calls["read snapshots"] == 0 and counted.calls["read packs"] == 1
    cache.delete("snapshots/s1")
    with pytest.raises(FileNotFoundError):
        cache.read("snapshots/s1")


def test_check_reads_the_service_not_the_cache(counted: CountingBackend, tmp_path: Path) -> None:
    cache = DiskCache(counted, tmp_path / "cache")
    cache.read("packs/ab/ab01")
    counted.inner.write("packs/ab/ab01", b"damaged on the service")
    assert cache.read("packs/ab/ab01") == bytes(range(200))  # the copy read before
    with bypassed(cache):
        assert cache.read("packs/ab/ab01") == b"damaged on the service"
    assert not cache.bypass
    sealed = CountingBackend(cache)  # as an encrypted repository's sealing wraps it
    with bypassed(sealed):
        assert cache.bypass
    assert not cache.bypass


def test_it_keeps_to_its_capacity(counted: CountingBackend, tmp_path: Path) -> None:
    cache = DiskCache(counted, tmp_path / "cache", capacity=100)
    for offset in range(0, 200, 20):
        cache.read("packs/ab/ab01", offset, 20)
    kept = sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert 0 < kept <= 100
    # the newest range is still there
    before = counted.calls["read packs"]
    assert cache.read("packs/ab/ab01", 180, 20) == bytes(range(180, 200))
    assert counted.calls["read packs"] == before


def test_an_s3_stack_crosses_to_a_worker_process(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """backup --jobs hands the repository's backend to spawned workers."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    location = f"s3://{s3_server.make_bucket()}/repo"
    remote = api.RemoteOptions(endpoint_url=s3_server.endpoint, connections=2)
    api.init_repository(location, remote)
    repo = api.open_repository(location, cache_dir=str(tmp_path / "c"), remote=remote)
    try:
        backend = pickle.loads(pickle.dumps(repo.open_args()["backend"]))
        assert backend.read("config") == repo.backend.read("config")
    finally:
        repo.close()
