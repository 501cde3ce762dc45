"""An open pack past its spill size goes on in a temporary file (store/spool.py):
the same pack bytes and ids, objects still readable before it is written, and
a folder repository stores it by file, atomically."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import blake3
import pytest

from coursevault.errors import BackendError
from coursevault.store.backend import TEMP_PREFIX, LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.ids import ObjectType, object_id
from coursevault.store.pack import BlockReader, PackWriter, iter_pack_objects
from coursevault.store.repository import Repository
from coursevault.store.spool import Spool, write_spool
from coursevault.store.wrappers import BackendWrapper


def _objects(n: int, seed: int = 3, trees: bool = True) -> list[tuple[ObjectType, bytes]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 7 == 0:
            out.append((ObjectType.BLOB, rng.randbytes(rng.randrange(1, 200_000))))
        else:
            text = b"<post id='%d'>%s</post>" % (i, bytes(rng.choices(b"abcde ", k=900)))
            out.append((ObjectType.TREE if trees and i % 3 == 0 else ObjectType.BLOB, text))
    return out


def test_a_spool_spills_past_its_size_and_reads_back_the_same_bytes() -> None:
    data = random.Random(1).randbytes(300_000)
    spool = Spool(b"HEAD", spill_at=100_000)
    for at in range(0, len(data), 7_000):
        spool.append(data[at : at + 7_000])
    assert spool.spilled and spool.size == len(data) + 4
    spool.patch(1, b"X")
    whole = b"HXAD" + data
    assert spool.pread(0, spool.size) == whole
    assert spool.pread(123_456, 50_000) == whole[123_456:173_456]
    assert bytes(spool.view()) == whole
    assert spool.digest() == blake3.blake3(whole).digest()
    with pytest.raises(ValueError):
        spool.patch(spool.size - 1, b"ab")
    fd = spool.fileno()
    assert fd is not None
    spool.close()
    with pytest.raises(OSError):
        os.fstat(fd)  # the temporary file is gone with it


def test_a_small_spool_never_makes_a_file() -> None:
    spool = Spool(b"HEAD", spill_at=1 << 20)
    spool.append(b"x" * 1000)
    assert not spool.spilled and spool.fileno() is None


def test_a_spilling_pack_writer_writes_the_same_pack_and_reads_its_objects_back() -> None:
    objects = _objects(120)
    kept = PackWriter(32 * 1024, level=3)
    spilled = PackWriter(32 * 1024, level=3, spill_at=64 * 1024)
    reader = BlockReader()
    for kind, payload in objects:
        oid = object_id(kind, payload)
        for w in (kept, spilled):
            w.add(kind, oid, payload)
    assert spilled._buf.spilled and not kept._buf.spilled
    cache: dict[int, bytes] = {}
    for kind, payload in objects:  # read back before the pack is written
        found = spilled.read(object_id(kind, payload), reader, cache)
        assert found == (int(kind), payload)
    pid_kept, view = kept.finish()
    pid_spilled, spool = spilled.finish_spool()
    assert spool.spilled
    assert pid_spilled == pid_kept == blake3.blake3(view).digest()
    assert bytes(spool.view()) == bytes(view)
    assert spilled.placed == kept.placed
    got = [payload for *_rest, payload in iter_pack_objects(bytes(spool.view()))]
    assert sorted(got) == sorted(p for _k, p in objects)


class Spy(BackendWrapper):
    """Records which call stored each key."""

    def __init__(self, inner: LocalBackend) -> None:
        super().__init__(inner)
        self.calls: list[tuple[str, str]] = []

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(("write", key))
        super().write(key, data)


def _spilled(data: bytes) -> Spool:
    spool = Spool(b"", spill_at=10)
    spool.append(data)
    assert spool.spilled
    return spool


def test_a_folder_stores_a_spilled_spool_by_file_and_a_wrapper_gets_its_bytes(
    tmp_path: Path,
) -> None:
    data = random.Random(2).randbytes(3_000_000)
    local = LocalBackend(tmp_path / "a")
    write_spool(local, "packs/ab/one", _spilled(data))
    assert local.read("packs/ab/one") == data
    assert not list(local.list_temporary())
    spy = Spy(LocalBackend(tmp_path / "b"))  # a wrapper: sealing needs the bytes
    write_spool(spy, "packs/ab/two", _spilled(data))
    assert spy.calls == [("write", "packs/ab/two")]
    assert spy.read("packs/ab/two") == data


def test_a_short_source_file_leaves_nothing_at_the_key(tmp_path: Path) -> None:
    local = LocalBackend(tmp_path / "a")
    with tempfile.TemporaryFile() as f:
        f.write(b"only this")
        f.flush()
        with pytest.raises(BackendError):
            local.write_file("packs/ab/short", f.fileno(), 1000)
    assert not local.exists("packs/ab/short")
    folder = tmp_path / "a" / "packs" / "ab"
    assert not [p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_a_session_of_spilled_packs_commits_objects_that_read_back(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, pack_size=256 * 1024)
    objects = _objects(300, seed=5, trees=False)  # the snapshot's walk reads trees
    with Repository.open(backend, cache_dir=tmp_path / "c") as repo, repo.writer() as w:
        ids, spilled = [], False
        for kind, payload in objects:
            ids.append(w.put(kind, payload))
            spilled |= w._pack._buf.spilled  # half the pack size: on file
        assert spilled
        for oid, (kind, payload) in zip(ids, objects, strict=True):  # before commit
            assert w.get(oid) == (kind, payload)
        root = w.put_tree(ids, b"root")
        w.commit({"course": "c", "time": "", "epoch": 1.0, "root": root.hex(), "parents": []})
        assert w.stats.packs >= 10  # several packs passed their spill size
    with Repository.open(backend, cache_dir=tmp_path / "c2") as repo:
        for oid, (kind, payload) in zip(ids, objects, strict=True):
            assert repo.get(oid) == (kind, payload)
        assert check_repository(repo, read_data=True).problems == []
