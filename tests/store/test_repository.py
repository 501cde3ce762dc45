"""The repository: writing, reading, dedup, commit/abort, catalog, opening."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from coursevault.errors import (
    BackendError,
    CorruptionError,
    CoursevaultError,
    FormatVersionError,
    NoRepositoryError,
    ObjectMissingError,
    RepositoryExistsError,
)
from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.ids import ObjectType, object_id
from coursevault.store.repository import Repository
from coursevault.store.treecodec import decode_tree

MiB = 1024 * 1024


def keys(backend: LocalBackend, prefix: str) -> list[str]:
    return [k for k, _size in backend.list(prefix)]


def reopen(backend: LocalBackend, cache: Path) -> Repository:
    return Repository.open(LocalBackend(backend.root), cache_dir=cache)


# -- round trips --------------------------------------------------------------------------
def test_put_get_small_and_large_many_packs(tmp_path: Path, backend, helpers) -> None:
    Repository.init(backend, pack_size=64 * 1024)
    rng = random.Random(1)
    expected: dict[bytes, tuple[ObjectType, bytes]] = {}
    with Repository.open(backend, cache_dir=tmp_path / "c1") as repo:
        w = repo.writer()
        payloads = [
            b"",
            b"x",
            rng.randbytes(4 * MiB),  # incompressible, raw codec
            helpers.random_payload(rng, 4 * MiB, True),  # compressible, zstd
            *(helpers.random_payload(rng, rng.randrange(1, 5000), i % 2 == 0) for i in range(300)),
        ]
        for i, p in enumerate(payloads):
            kind = ObjectType.TREE if i % 7 == 3 else ObjectType.BLOB
            if kind is ObjectType.TREE:
                p = b"\x00" + p  # a tree with no refs and an opaque body
            oid = w.put(kind, p)
            assert oid == object_id(kind, p)
            expected[oid] = (kind, p)
        # readable before the commit, through the session
        for oid, want in expected.items():
            assert w.get(oid) == want
        root = w.put_tree(sorted(expected), b"root")
        snap = w.commit(helpers.snapshot_record(root))
        assert w.stats.packs >= 10  # 8 MiB + in 64 KiB packs
        assert w.stats.new_objects == len(expected) + 1
        assert len(keys(backend, "packs/")) == w.stats.packs
        assert w.stats.stored_bytes == sum(s for _k, s in backend.list("packs/")) + sum(
            s for _k, s in backend.list("index/")
        )
        for oid, want in expected.items():
            assert repo.get(oid) == want
            assert repo.has(oid)
    # and from a fresh process' point of view (new catalog)
    with Repository.open(LocalBackend(backend.root), cache_dir=tmp_path / "c2") as again:
        for oid, want in expected.items():
            assert again.get(oid) == want
        assert [s.id for s in again.snapshots()] == [snap]
        refs, body = decode_tree(again.get(root)[1])
        assert sorted(refs) == sorted(expected) and body == b"root"
        assert check_repository(again, read_data=True).ok


def test_missing_object_raises(repo) -> None:
    oid = object_id(ObjectType.BLOB, b"never stored")
    assert not repo.has(oid)
    with pytest.raises(ObjectMissingError) as info:
        repo.get(oid)
    assert info.value.object_id == oid.hex()


# -- dedup --------------------------------------------------------------------------------
def test_dedup_within_and_across_sessions(repo, backend) -> None:
    payload = b"the same forum post" * 10
    with repo.writer() as w:
        a = w.put(ObjectType.BLOB, payload)
        b = w.put(ObjectType.BLOB, payload)
        t = w.put(ObjectType.TREE, payload)  # same bytes, other type: another object
        assert a == b != t
        assert w.stats.new_objects == 2
    assert repo.catalog.count_objects() == 2
    packs = keys(backend, "packs/")
    assert len(packs) == 1

    with repo.writer() as w2:
        assert w2.put(ObjectType.BLOB, payload) == a
        assert w2.stats.new_objects == 0
    assert w2.stats.packs == 0
    assert keys(backend, "packs/") == packs
    assert repo.catalog.count_objects() == 2

    # the catalog is a cache: a second catalog dedups against the index files too
    with reopen(backend, backend.root.parent / "other-cache") as other, other.writer() as w3:
        w3.put(ObjectType.BLOB, payload)
        assert w3.stats.new_objects == 0


def test_dedup_against_a_flushed_pack_of_the_same_session(tmp_path: Path, backend) -> None:
    Repository.init(backend, pack_size=64 * 1024)
    rng = random.Random(2)
    with Repository.open(backend, cache_dir=tmp_path / "c") as repo:
        w = repo.writer()
        first = rng.randbytes(1000)
        oid = w.put(ObjectType.BLOB, first)
        while w.stats.packs == 0:
            w.put(ObjectType.BLOB, rng.randbytes(10_000))
        n = w.stats.new_objects
        assert w.put(ObjectType.BLOB, first) == oid  # now only in a flushed, uncommitted pack
        assert w.stats.new_objects == n
        w.commit()
        assert sum(1 for o, _loc in repo.catalog.iter_objects() if o == oid) == 1
        assert repo.catalog.count_objects() == n


# -- reading uncommitted objects ----------------------------------------------------------
def test_session_get_reads_uncommitted_objects(tmp_path: Path, backend) -> None:
    Repository.init(backend, pack_size=64 * 1024, block_size=4096)
    rng = random.Random(3)
    with Repository.open(backend, cache_dir=tmp_path / "c") as repo:
        w = repo.writer()
        flushed = {w.put(ObjectType.BLOB, p): p for p in (rng.randbytes(3000) for _ in range(60))}
        assert w.stats.packs >= 2  # these live in packs already written
        in_block = {}
        for _ in range(5):
            p = rng.randbytes(1500)
            in_block[w.put(ObjectType.BLOB, p)] = p
        for oid, p in {**flushed, **in_block}.items():
            assert w.get(oid) == (ObjectType.BLOB, p)
            # ... and invisible to the repository until commit
            assert not repo.has(oid)
        with reopen(backend, tmp_path / "c2") as other:
            assert not any(other.has(o) for o in flushed)
        w.commit()
        for oid, p in {**flushed, **in_block}.items():
            assert repo.get(oid) == (ObjectType.BLOB, p)


def test_session_get_in_finished_block_of_open_pack(repo) -> None:
    # default pack size (16 MiB), block size 128 KiB: three blocks, nothing flushed
    w = repo.writer()
    payloads = [bytes([i]) * 100_000 for i in range(3)]
    ids = [w.put(ObjectType.BLOB, p) for p in payloads]
    assert w.stats.packs == 0
    for oid, p in zip(ids, payloads, strict=True):
        assert w.get(oid) == (ObjectType.BLOB, p)
    w.abort()


# -- abort --------------------------------------------------------------------------------
def test_abort_deletes_every_pack_and_shows_nothing(tmp_path: Path, backend) -> None:
    Repository.init(backend, pack_size=64 * 1024)
    rng = random.Random(4)
    with Repository.open(backend, cache_dir=tmp_path / "c") as repo:
        kept = {}
        with repo.writer() as w0:
            kept[w0.put(ObjectType.BLOB, b"committed earlier")] = b"committed earlier"
        before_packs = keys(backend, "packs/")
        before_index = keys(backend, "index/")
        w = repo.writer()
        written = [w.put(ObjectType.BLOB, rng.randbytes(5000)) for _ in range(100)]
        assert w.stats.packs >= 5
        assert len(keys(backend, "packs/")) == len(before_packs) + w.stats.packs
        assert keys(backend, "locks/")  # the session holds a lock
        w.abort()
        w.abort()  # idempotent
        assert keys(backend, "packs/") == before_packs
        assert keys(backend, "index/") == before_index
        assert keys(backend, "snapshots/") == []
        assert keys(backend, "locks/") == []
        assert not any(repo.has(o) for o in written)
        assert list(backend.list_temporary()) == []
        for oid, p in kept.items():
            assert repo.get(oid)[1] == p
        report = check_repository(repo, read_data=True)
        assert report.ok and report.problems == []


def test_aborted_objects_are_not_readable(tmp_path: Path, backend) -> None:
    Repository.init(backend, pack_size=64 * 1024)
    rng = random.Random(6)
    with Repository.open(backend, cache_dir=tmp_path / "c") as repo:
        w = repo.writer()
        payload = rng.randbytes(1000)
        oid = w.put(ObjectType.BLOB, payload)
        while w.stats.packs == 0:
            w.put(ObjectType.BLOB, rng.randbytes(5000))
        assert w.get(oid) == (ObjectType.BLOB, payload)  # from the flushed, uncommitted pack
        w.abort()
        assert keys(backend, "packs/") == []
        assert not repo.has(oid)
        with pytest.raises(ObjectMissingError):
            repo.get(oid)


def test_exception_in_session_context_aborts(repo, backend) -> None:
    with pytest.raises(RuntimeError), repo.writer() as w:
        oid = w.put(ObjectType.BLOB, b"y" * 10)
        w._flush_pack()
        assert keys(backend, "packs/")
        raise RuntimeError("ingest failed")
    assert keys(backend, "packs/") == []
    assert not repo.has(oid)


# -- commit -------------------------------------------------------------------------------
def test_commit_writes_index_and_snapshot_readable_after_reopen(
    repo, backend, cache_dir, helpers
) -> None:
    assert keys(backend, "index/") == []
    made = helpers.make_snapshot(repo, 50)
    index_files = keys(backend, "index/")
    assert len(index_files) == 1
    assert keys(backend, "snapshots/") == [f"snapshots/{made.snap_id[:2]}/{made.snap_id}"]
    assert (
        backend.read(f"refs/heads/{made.record['course']}").split(b"\n")[0].decode() == made.snap_id
    )
    assert keys(backend, "locks/") == []
    repo.close()
    with reopen(backend, cache_dir) as again:
        [row] = again.snapshots()
        assert row.id == made.snap_id
        assert row.series == "course-1" and row.root == made.root.hex()
        assert row.record == made.record
        assert again.read_snapshot(made.snap_id) == made.record
        assert again.snapshots("course-1") == [row] and again.snapshots("other") == []
        for oid, p in made.objects.items():
            assert again.get(oid) == (ObjectType.BLOB, p)
        # index files name exactly the committed objects
        from_index = {o for name in index_files for o, _l in again.read_index(name.split("/")[1])}
        assert from_index == {*made.objects, made.root}


def test_commit_without_snapshot_only_indexes(repo, backend) -> None:
    with repo.writer() as w:
        oid = w.put(ObjectType.BLOB, b"z")
    assert keys(backend, "snapshots/") == []
    assert len(keys(backend, "index/")) == 1
    assert repo.get(oid) == (ObjectType.BLOB, b"z")


def test_head_tracks_newest_snapshot(repo, backend, helpers) -> None:
    new = helpers.make_snapshot(repo, 3, seed=1, epoch=2000.0)
    helpers.make_snapshot(repo, 3, seed=2, epoch=1000.0)  # older, committed later
    assert backend.read("refs/heads/course-1").split(b"\n")[0].decode() == new.snap_id
    assert [s.epoch for s in repo.snapshots()] == [1000.0, 2000.0]


# -- catalog ------------------------------------------------------------------------------
def test_rebuild_catalog_after_deleting_it(repo, backend, cache_dir, helpers) -> None:
    helpers.make_snapshot(repo, 40, seed=1)
    helpers.make_snapshot(repo, 40, seed=2, course="course-2")
    objects = sorted(repo.catalog.iter_objects(), key=lambda e: e[0])
    snaps = repo.snapshots()
    repo.close()
    db = cache_dir / repo.id / "catalog.sqlite"
    assert db.is_file()
    for f in db.parent.iterdir():
        f.unlink()
    with Repository.open(LocalBackend(backend.root), cache_dir=cache_dir, sync=False) as again:
        assert again.catalog.count_objects() == 0 and again.snapshots() == []
        counts = again.rebuild_catalog()
        assert counts == {
            "index_files": 2,
            "objects": len(objects),
            "snapshots": 2,
            "damaged_index_files": [],
        }
        assert sorted(again.catalog.iter_objects(), key=lambda e: e[0]) == objects
        assert again.snapshots() == snaps
        # and rebuilding an up-to-date catalog changes nothing
        assert again.rebuild_catalog() == counts
        assert again.snapshots() == snaps


def test_other_cache_dir_sees_the_snapshot(repo, backend, tmp_path, helpers) -> None:
    made = helpers.make_snapshot(repo, 20)
    with reopen(backend, tmp_path / "elsewhere") as other:
        assert [s.id for s in other.snapshots()] == [made.snap_id]
        for oid, p in made.objects.items():
            assert other.get(oid)[1] == p
        # a snapshot committed through the second catalog is seen by the first on reopen
        made2 = helpers.make_snapshot(other, 5, seed=9, course="c2")
    repo.sync_catalog()
    assert {s.id for s in repo.snapshots()} == {made.snap_id, made2.snap_id}
    assert all(repo.has(o) for o in made2.objects)


def test_catalog_forgets_deleted_snapshot(repo, backend, tmp_path, helpers) -> None:
    """Without a journal (a repository from before it), a sync lists the
    files; with one, a file deleted behind the journal's back is check's to
    report (tests/store/test_journal.py)."""
    made = helpers.make_snapshot(repo, 5)
    backend.delete("journal/checkpoint")
    backend.delete(repo.record_key(made.snap_id))
    repo.sync_catalog()
    assert repo.snapshots() == []


def test_catalog_of_another_repository_is_refused(tmp_path: Path) -> None:
    a, b = LocalBackend(tmp_path / "a"), LocalBackend(tmp_path / "b")
    Repository.init(a)
    Repository.init(b)
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    Repository.open(a, catalog_url=url).close()
    with pytest.raises(CoursevaultError):
        Repository.open(b, catalog_url=url)


# -- opening ------------------------------------------------------------------------------
def test_open_without_config(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoRepositoryError):
        Repository.open(LocalBackend(tmp_path / "empty"), cache_dir=tmp_path / "c")
    with pytest.raises(NoRepositoryError):
        Repository.open(LocalBackend(tmp_path / "does-not-exist"), cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_init_twice(backend) -> None:
    config = Repository.init(backend)
    before = backend.read("config")
    with pytest.raises(RepositoryExistsError):
        Repository.init(backend)
    assert backend.read("config") == before
    assert json.loads(before)["id"] == config["id"]


@pytest.mark.parametrize("version", [6, 99, "6", 0])
def test_future_format_version(backend, tmp_path, version) -> None:
    Repository.init(backend)
    cfg = json.loads(backend.read("config"))
    cfg["version"] = version
    backend.write("config", json.dumps(cfg).encode())
    with pytest.raises(FormatVersionError):
        Repository.open(backend, cache_dir=tmp_path / "c")


def test_unreadable_config(backend, tmp_path) -> None:
    Repository.init(backend)
    backend.write("config", b"{not json")
    with pytest.raises(CoursevaultError):
        Repository.open(backend, cache_dir=tmp_path / "c")


@pytest.mark.parametrize(
    "damage",
    [
        lambda cfg: cfg.pop("block_size"),
        lambda cfg: cfg.pop("pack_size"),
        lambda cfg: cfg.pop("zstd_level"),
        lambda cfg: cfg.pop("chunker"),
        lambda cfg: cfg["chunker"].pop("avg"),
        lambda cfg: cfg.update(pack_size="big"),
    ],
)
def test_a_config_without_what_writers_read_is_unreadable(backend, tmp_path, damage) -> None:
    """The config is plain JSON (an encrypted repository's too): a key
    renamed by a flipped byte was opened, and the first ingest was an
    internal error (KeyError: 'block_size')."""
    Repository.init(backend)
    cfg = json.loads(backend.read("config"))
    damage(cfg)
    backend.write("config", json.dumps(cfg).encode())
    with pytest.raises(CorruptionError, match="is unreadable"):
        Repository.open(backend, cache_dir=tmp_path / "c")


@pytest.mark.parametrize("repo_id", ["../../escaped", "/tmp/elsewhere", "", 7, "A" * 32, "0" * 31])
def test_a_config_whose_id_is_not_32_hex_is_unreadable(backend, tmp_path, repo_id) -> None:
    """The id names the repository's cache folder: a shared repository whose
    config said ``../../escaped`` had every command make that folder outside
    the cache folder and write its catalog there."""
    Repository.init(backend)
    cfg = json.loads(backend.read("config"))
    cfg["id"] = repo_id
    backend.write("config", json.dumps(cfg).encode())
    cache = tmp_path / "a" / "b" / "cache"
    with pytest.raises(CorruptionError, match="is unreadable"):
        Repository.open(backend, cache_dir=cache)
    assert not (tmp_path / "a" / "escaped").exists()
    assert not (tmp_path / "a").exists()


def test_stats(repo, backend, helpers) -> None:
    helpers.make_snapshot(repo, 30)
    s = repo.stats()
    assert s["snapshots"] == 1 and s["courses"] == 1
    assert s["objects"] == 31
    assert s["packs"] == len(keys(backend, "packs/")) == 1
    assert s["pack_bytes"] == sum(size for _k, size in backend.list("packs/"))
    assert s["index_files"] == 1 and s["index_bytes"] > 0


# -- known bugs ---------------------------------------------------------------------------
class _SnapshotWriteFails(LocalBackend):
    """A backend whose disk fills up exactly when the snapshot file is written."""

    def write(self, key: str, data) -> None:  # type: ignore[override]
        if key.startswith("snapshots/"):
            raise BackendError(f"cannot write {key}: No space left on device")
        super().write(key, data)


def test_failed_snapshot_write_does_not_lose_indexed_objects(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    Repository.init(LocalBackend(root))
    with Repository.open(_SnapshotWriteFails(root), cache_dir=tmp_path / "c") as repo:
        with pytest.raises(BackendError), repo.writer() as w:
            oid = w.put(ObjectType.BLOB, b"precious data")
            top = w.put_tree([oid], b"")
            w.commit({"course": "c", "time": "t", "epoch": 1.0, "root": top.hex(), "parents": []})
        # whatever the failed commit left behind must be consistent
        assert check_repository(repo).ok
        with repo.writer() as w2:
            w2.put(ObjectType.BLOB, b"precious data")
        assert repo.get(oid) == (ObjectType.BLOB, b"precious data")


def test_bad_snapshot_record_does_not_brick_the_repository(repo, backend, tmp_path) -> None:
    """Regression: commit() wrote the snapshot before float(epoch) failed; open() then died."""
    w = repo.writer()
    top = w.put_tree([], b"")
    with pytest.raises(CoursevaultError):
        w.commit({"course": "c", "time": "t", "epoch": "soon", "root": top.hex(), "parents": []})
    with reopen(backend, tmp_path / "fresh") as again:
        assert again.snapshots() == []
    assert keys(backend, "locks/") == []


def test_missing_pack_names_the_object(repo, backend, helpers) -> None:
    """Regression: the error's object_id used to be the pack id."""
    made = helpers.make_snapshot(repo, 3)
    for k in keys(backend, "packs/"):
        backend.delete(k)
    oid = next(iter(made.objects))
    with pytest.raises(ObjectMissingError) as info:
        repo.get(oid)
    assert info.value.object_id == oid.hex()


class _StaleIndexListing(LocalBackend):
    """Runs ``hook`` after listing index/ but before the caller uses the listing:
    the interleaving of a concurrent commit with sync_catalog, made deterministic."""

    hook = None

    def list(self, prefix: str):  # type: ignore[override]
        items = list(super().list(prefix))
        if prefix == "index/" and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        yield from items


def test_sync_with_shared_catalog_keeps_concurrent_commit(repo, backend, cache_dir) -> None:
    backend.delete("journal/checkpoint")  # the listing path (no journal), as before it
    with repo.writer() as w:
        w.put(ObjectType.BLOB, b"one")
    committed = {}

    def concurrent_commit() -> None:
        with repo.writer() as w2:
            committed["oid"] = w2.put(ObjectType.BLOB, b"two")

    stale = _StaleIndexListing(backend.root)
    stale.hook = concurrent_commit
    with Repository.open(stale, cache_dir=cache_dir) as opener:
        assert opener.has(committed["oid"])
        assert repo.has(committed["oid"])


def test_new_objects_among_known_ones_share_full_blocks(repo) -> None:
    """A nightly ingest puts mostly known objects; dropping them must not leave
    each new object alone in a tiny block (it would compress alone)."""
    rng = random.Random(5)
    old = [rng.randbytes(1024) for _ in range(1000)]
    with repo.writer() as w:
        for payload in old:
            w.put(ObjectType.BLOB, payload)
    new_ids = []
    with repo.writer() as w2:
        for i, payload in enumerate(old):
            w2.put(ObjectType.BLOB, payload)
            if i % 50 == 0:
                new_ids.append(w2.put(ObjectType.BLOB, rng.randbytes(1024)))
        assert w2.stats.new_objects == len(new_ids) == 20
    blocks = {(loc.pack, loc.block_offset) for loc in map(repo.catalog.lookup, new_ids) if loc}
    assert len(blocks) == 1


def test_writer_syncs_after_locking_so_a_prune_in_between_is_seen(
    repo, backend, tmp_path: Path, helpers
) -> None:
    """A catalog synced at open can be stale by the time the writer holds its lock:
    another process may have forgotten and pruned.  Deduplicating against that
    stale view would reference deleted objects; the writer re-syncs instead."""
    from coursevault.store.prune import prune_repository

    payload = b"a record that will be pruned " * 20
    with repo.writer() as w:
        oid = w.put(ObjectType.BLOB, payload)
        w.commit(helpers.snapshot_record(oid))
    snap = repo.snapshots()[0].id
    with reopen(backend, tmp_path / "other-cache") as other:  # another process
        other.delete_snapshot(snap)
        prune_repository(other)
    with repo.writer() as w2:  # repo's catalog still listed the object at open
        assert w2.put(ObjectType.BLOB, payload) == oid
        w2.commit(helpers.snapshot_record(oid, epoch=2000.0))
    with reopen(backend, tmp_path / "fresh-cache") as fresh:
        assert fresh.get(oid) == (ObjectType.BLOB, payload)
        assert check_repository(fresh, read_data=True).ok


def test_what_inputs_were_stored_as_answers_while_its_snapshot_lives(repo, backend) -> None:
    """The catalog's cache of cut inputs answers for indexed trees of
    snapshots still there: prune keeps what a snapshot reaches whole, but may
    keep other trees without their children (a dictionary's content)."""
    with repo.writer() as w:
        leaf = w.put_tree([], b"a record")
        tree = w.put_tree([leaf], b"a document")
        snap = w.commit(
            {"course": "c", "time": "t", "epoch": 1.0, "root": tree.hex(), "parents": []}
        )
    assert snap is not None
    repo.sync_catalog()
    missing = object_id(ObjectType.TREE, b"never stored")
    rows = [(b"k" * 32, tree, {"n": 1}), (b"m" * 32, missing, {})]
    repo.stored_inputs.put(snap, rows)
    repo.stored_inputs.put("0" * 64, [(b"o" * 32, tree, {})])  # no such snapshot
    assert repo.stored_inputs.get(b"k" * 32) == (tree, {"n": 1})
    assert repo.stored_inputs.get(b"m" * 32) is None  # not indexed: not an answer
    assert repo.stored_inputs.get(b"o" * 32) is None  # no snapshot vouches for it
    # the index rewritten by another process (as a prune does): still whole
    (name,) = [key for key, _ in backend.list("index/")]
    data = backend.read(name)
    backend.delete(name)
    repo.sync_catalog()
    backend.write(name, data)
    repo.sync_catalog()
    assert repo.stored_inputs.get(b"k" * 32) == (tree, {"n": 1})
    repo.delete_snapshot(snap)  # forgotten: its trees may go at the next prune
    repo.sync_catalog()
    assert repo.catalog.has(tree) and repo.stored_inputs.get(b"k" * 32) is None


def test_what_an_input_was_stored_as_is_replaced_not_kept(repo) -> None:
    """A key may name something that changes (a member's checkpoints, night
    after night): the latest row wins."""
    with repo.writer() as w:
        a = w.put_tree([], b"night 1")
        b = w.put_tree([], b"night 2")
        snap = w.commit({"course": "c", "time": "t", "epoch": 1.0, "root": a.hex(), "parents": []})
    assert snap is not None
    repo.sync_catalog()
    repo.stored_inputs.put(snap, [(b"k" * 32, a, {"night": 1})])
    repo.stored_inputs.put(snap, [(b"k" * 32, b, {"night": 2})])
    assert repo.stored_inputs.get(b"k" * 32) == (b, {"night": 2})


# -- the snapshot records' layout ---------------------------------------------------------
def test_listed_snapshot_names_records_of_the_layout_only() -> None:
    from coursevault.store.snapshots import listed_snapshot, snapshot_key

    sid = "ab" + "0" * 62
    assert snapshot_key(sid, True) == f"snapshots/ab/{sid}"
    assert snapshot_key(sid, False) == f"snapshots/{sid}"
    assert listed_snapshot(f"snapshots/ab/{sid}", True) == sid
    assert listed_snapshot(f"snapshots/{sid}", False) == sid
    assert listed_snapshot(f"snapshots/{sid}", True) is None  # flat in a fanned-out one
    assert listed_snapshot(f"snapshots/cd/{sid}", True) is None  # the wrong subfolder
    assert listed_snapshot(f"snapshots/ab/{sid}", False) is None
    assert listed_snapshot(f"snapshots/ab/{sid[:-1]}", True) is None
    assert listed_snapshot(f"snapshots/ab/{sid.upper()}", True) is None
    assert listed_snapshot(f"snapshots/ab/x/{sid}", True) is None


def test_a_record_outside_its_subfolder_is_a_stray_file(repo, backend, tmp_path, helpers) -> None:
    """A version 5 record is found under its first two hex digits only; a
    copy put anywhere else is reported, never listed as a snapshot."""
    made = helpers.make_snapshot(repo, 5)
    other = helpers.make_snapshot(repo, 5, seed=9)
    data = backend.read(repo.record_key(other.snap_id))
    repo.delete_snapshot(other.snap_id)
    backend.write(f"snapshots/{other.snap_id}", data)
    backend.write(f"snapshots/zz/{other.snap_id}", data)
    report = check_repository(repo)
    assert report.ok, report.errors
    strays = sorted(p.message for p in report.problems if p.kind == "stray")
    assert strays == [
        f"ignoring snapshots/{other.snap_id}: not a snapshot record (a stray file; "
        "remove it by hand)",
        f"ignoring snapshots/zz/{other.snap_id}: not a snapshot record (a stray file; "
        "remove it by hand)",
    ]
    backend.delete("journal/checkpoint")  # the catalog from the listing: the same
    with Repository.open(backend, cache_dir=tmp_path / "listed") as listed:
        assert [s.id for s in listed.snapshots()] == [made.snap_id]
