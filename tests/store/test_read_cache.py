"""The reader's cache of verified objects when one object sits in two blocks.

Concurrent writers each store an object the other has not committed yet, so
the index names it twice (issue 20, defect 1).  The reader keeps the objects
of the blocks it came back to; evicting one block must not make an object
that another cached block also holds read as corrupt.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coursevault.store import objects as objects_module
from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.ids import ObjectType
from coursevault.store.repository import Repository


def _filler(tag: str, i: int) -> bytes:
    return f"<rec writer='{tag}' n='{i}'>".encode() + bytes(range(256)) * 8


def test_object_in_two_blocks_survives_eviction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, block_size=16 * 1024, dictionary_depth=0)
    cache = tmp_path / "cache"
    shared = b"<shared>the same record, stored by both writers</shared>"
    # two sessions open at once: neither sees the other's uncommitted objects
    a = Repository.open(backend, cache_dir=cache)
    b = Repository.open(backend, cache_dir=tmp_path / "cache-b")
    wa, wb = a.writer(), b.writer()
    ids_a = [wa.put(ObjectType.BLOB, _filler("a", i)) for i in range(4)]
    x = wa.put(ObjectType.BLOB, shared)
    ids_b = [wb.put(ObjectType.BLOB, _filler("b", i)) for i in range(4)]
    assert wb.put(ObjectType.BLOB, shared) == x
    roots = []
    for w, ids in ((wa, ids_a), (wb, ids_b)):
        root = w.put_tree([*ids, x], b"root")
        roots.append(root)
        w.commit({"course": "c", "time": "t", "epoch": 1.0, "root": root.hex(), "parents": []})
    a.close()
    b.close()
    c = Repository.open(backend, cache_dir=cache)
    with c.writer() as wc:  # a third block, unrelated to x
        ids_c = [wc.put(ObjectType.BLOB, _filler("c", i)) for i in range(4)]
        root = wc.put_tree(ids_c, b"root c")
        wc.commit({"course": "d", "time": "t", "epoch": 1.0, "root": root.hex(), "parents": []})
    c.close()

    # a cache of about one block: learning a third block evicts the first
    monkeypatch.setattr(objects_module, "BLOCK_CACHE_BYTES", 20 * 1024)
    repo = Repository.open(backend, cache_dir=tmp_path / "cache-read")
    where = repo.locate(x)
    blocks = {(repo.locate(o).pack, repo.locate(o).block_offset) for o in ids_a + ids_b}
    assert len(blocks) >= 2
    # read both writers' blocks twice (a block is learned on the second read),
    # the one the catalog does not name for x first
    first, second = (ids_b, ids_a) if repo.locate(ids_a[0]).pack == where.pack else (ids_a, ids_b)
    for ids in (first, second):
        for oid in ids * 2:
            repo.get(oid)
        repo.get(x)
    for oid in ids_c * 2:  # learning a third block evicts the first
        repo.get(oid)
    assert repo.get(x) == (ObjectType.BLOB, shared)
    for ids in (first, ids_c, second, first):
        for oid in ids * 2:
            repo.get(oid)
        assert repo.get(x) == (ObjectType.BLOB, shared)
    assert check_repository(repo, read_data=True).ok
    repo.close()


def test_a_reader_of_one_block_never_holds_two(tmp_path: Path) -> None:
    """A reader that keeps one decoded block (restore --db) drops it before
    decoding the next, not after: it never holds two blocks at once (1 MiB
    of an M course's peak)."""
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, block_size=16 * 1024, dictionary_depth=0)
    repo = Repository.open(backend, cache_dir=tmp_path / "cache")
    with repo.writer() as w:
        ids = [w.put(ObjectType.BLOB, _filler("a", i)) for i in range(30)]
        root = w.put_tree(ids, b"root")
        w.commit({"course": "c", "time": "t", "epoch": 1.0, "root": root.hex(), "parents": []})
    repo.close()
    reader = Repository.open(backend, cache_dir=tmp_path / "cache-read")
    reader.cache_bytes = 3 * 16 * 1024
    reader.block_cache_bytes = 16 * 1024
    held: list[int] = []
    decode = reader._reader.decode

    def watched(block: bytes) -> tuple[bytes, list[tuple[int, int, int]]]:
        held.append(len(reader._blocks))
        return decode(block)

    reader._reader.decode = watched  # type: ignore[method-assign]
    blocks = {(reader.locate(o).pack, reader.locate(o).block_offset) for o in ids}
    assert len(blocks) >= 3
    for oid in ids:
        reader.get(oid)
    assert len(held) >= 3 and max(held) == 0
    reader.close()
