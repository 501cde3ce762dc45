"""Damaged repositories: corrupt data is never returned, and check names the damage."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coursevault.errors import (
    ChecksumMismatchError,
    CorruptionError,
    CoursevaultError,
    ObjectMissingError,
)
from coursevault.store import check
from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.ids import ObjectType
from coursevault.store.pack import BLOCK_HEAD, CODEC_RAW, CODEC_ZSTD, ENTRY
from coursevault.store.repository import Repository


def fresh(backend: LocalBackend, cache: Path) -> Repository:
    """A new Repository object: no block cache, so every read goes to the files."""
    return Repository.open(LocalBackend(backend.root), cache_dir=cache)


def errors(report) -> list[str]:
    return [p.message for p in report.problems if p.severity == "error"]


def warnings(report) -> list[str]:
    return [p.message for p in report.problems if p.severity == "warning"]


def one_object_per_block(tmp_path: Path, backend: LocalBackend, compressible: bool, helpers):
    """Repository whose blocks hold one 16 KiB object each; returns (objects, locations, pack)."""
    Repository.init(backend, block_size=16 * 1024)
    rng = random.Random(11)
    objects = {}
    with Repository.open(backend, cache_dir=tmp_path / "c0") as repo:
        made = helpers.make_snapshot(repo, 0)  # an earlier, unrelated snapshot
        with repo.writer() as w:
            for _ in range(6):
                p = helpers.random_payload(rng, 16 * 1024, compressible)
                objects[w.put(ObjectType.BLOB, p)] = p
            root = w.put_tree(list(objects), b"")
            w.commit(helpers.snapshot_record(root, epoch=2000.0))
        locs = {oid: repo.locate(oid) for oid in objects}
    assert made.snap_id
    [pack_id] = {loc.pack for loc in locs.values()}
    pack = backend.root / "packs" / pack_id.hex()[:2] / pack_id.hex()
    assert len({loc.block_offset for loc in locs.values()}) == len(objects)
    return objects, locs, pack


# -- (a) a flipped byte in a block's payload ----------------------------------------------
@pytest.mark.parametrize(
    ("compressible", "codec"), [(True, CODEC_ZSTD), (False, CODEC_RAW)], ids=["zstd", "raw"]
)
@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_flipped_payload_byte_is_detected(
    tmp_path, backend, helpers, compressible, codec, where
) -> None:
    objects, locs, pack = one_object_per_block(tmp_path, backend, compressible, helpers)
    data = pack.read_bytes()
    blocks = helpers.block_payloads(data)
    boff, payload_at, stored, got_codec = blocks[2]
    assert got_codec == codec
    helpers.flip_byte(pack, payload_at + int(stored * where), 0x5A)
    [victim] = [oid for oid, loc in locs.items() if loc.block_offset == boff]

    with fresh(backend, tmp_path / "c1") as repo:
        with pytest.raises(CorruptionError):
            repo.get(victim)
        for oid, p in objects.items():  # the other blocks are untouched
            if oid != victim:
                assert repo.get(oid) == (ObjectType.BLOB, p)
        report = check_repository(repo, read_data=True)
    assert not report.ok
    name = pack.name
    assert any(name in m for m in errors(report)), errors(report)
    # nothing else is blamed: the other pack and the snapshots are fine
    assert all(name in m for m in errors(report)), errors(report)
    # without read_data the damage to a blob is not visible, and that is no error
    with fresh(backend, tmp_path / "c2") as repo:
        assert check_repository(repo).ok


def test_flipped_byte_found_when_a_reader_learns_the_whole_block(
    tmp_path, backend, helpers
) -> None:
    """The second read from a block hashes all its objects at once (see
    Repository.get); a damaged object among them is still never returned."""
    Repository.init(backend, block_size=64 * 1024)
    rng = random.Random(5)
    objects = {}
    with Repository.open(backend, cache_dir=tmp_path / "c0") as repo:
        with repo.writer() as w:
            for _ in range(6):  # random bytes: one raw (uncompressed) block
                p = helpers.random_payload(rng, 4096, False)
                objects[w.put(ObjectType.BLOB, p)] = p
            root = w.put_tree(list(objects), b"")
            w.commit(helpers.snapshot_record(root, epoch=2000.0))
        locs = {oid: repo.locate(oid) for oid in objects}
    order = sorted(objects, key=lambda o: locs[o].offset)
    assert len({(locs[o].pack, locs[o].block_offset) for o in order}) == 1
    [pack] = helpers.pack_files(backend.root)
    [(_boff, payload_at, _stored, codec)] = helpers.block_payloads(pack.read_bytes())
    assert codec == CODEC_RAW
    victim = order[3]
    helpers.flip_byte(pack, payload_at + locs[victim].offset + 100, 0x01)

    with fresh(backend, tmp_path / "c1") as repo:
        assert repo.get(order[0]) == (ObjectType.BLOB, objects[order[0]])  # first visit
        assert repo.get(order[1]) == (ObjectType.BLOB, objects[order[1]])  # learns the block
        with pytest.raises(ChecksumMismatchError):
            repo.get(victim)
        for oid in order[4:]:
            assert repo.get(oid) == (ObjectType.BLOB, objects[oid])


def test_good_repository_checks_clean(repo, helpers) -> None:
    helpers.make_snapshot(repo, 100)
    report = check_repository(repo, read_data=True)
    assert report.ok and report.problems == []
    assert report.snapshots == 1 and report.objects == 101 and report.reachable == 101
    assert report.packs == 1 and report.bytes_read > 0


# -- (b) truncated pack -------------------------------------------------------------------
@pytest.mark.parametrize("cut", [1, 100, 5000])
def test_truncated_pack_is_reported(repo, backend, cache_dir, helpers, cut) -> None:
    helpers.make_snapshot(repo, 200, size=100)
    [pack] = helpers.pack_files(backend.root)
    size = pack.stat().st_size
    with open(pack, "r+b") as f:
        f.truncate(size - cut)
    report = check_repository(repo)
    errs = errors(report)
    assert errs
    assert all(pack.name in m and "truncated" in m for m in errs), errs
    report = check_repository(repo, read_data=True)
    assert any(pack.name in m and "truncated" in m for m in errors(report))


def test_check_survives_pack_cut_to_its_magic(repo, backend, helpers) -> None:
    """Regression: iter_blocks used to index data[4] of a 4-byte pack (IndexError)."""
    helpers.make_snapshot(repo, 10)
    [pack] = helpers.pack_files(backend.root)
    with open(pack, "r+b") as f:
        f.truncate(4)
    report = check_repository(repo, read_data=True)
    assert any(pack.name in m for m in errors(report))


# -- (c) deleted index file ---------------------------------------------------------------
def test_deleted_index_file_is_reported(repo, backend, helpers) -> None:
    # the blobs are indexed by one commit, the tree and snapshot by a second one
    rng = random.Random(5)
    with repo.writer() as w:
        blobs = [w.put(ObjectType.BLOB, rng.randbytes(200)) for _ in range(7)]
    [blob_index] = [k for k, _ in backend.list("index/")]
    blob_packs = [p.name for p in helpers.pack_files(backend.root)]
    with repo.writer() as w:
        root = w.put_tree(blobs, b"")
        snap = w.commit(helpers.snapshot_record(root))
    assert check_repository(repo).ok

    backend.delete(blob_index)
    report = check_repository(repo)
    # deleted behind the journal's back: check says so too (journal_check.py)
    journal = [p.message for p in report.errors if p.kind == "journal"]
    assert len(journal) == 1 and blob_index.split("/")[1] in journal[0], journal
    errs = [p.message for p in report.errors if p.kind != "journal"]
    assert len(errs) == len(blobs)
    for oid in blobs:
        assert any(snap in m and oid.hex() in m and "missing" in m for m in errs), errs
    warns = warnings(report)
    assert blob_packs
    for name in blob_packs:
        assert any(name in m and "unreferenced" in m for m in warns), warns

    # and when the only index file is gone, the root itself is missing
    for k, _ in list(backend.list("index/")):
        backend.delete(k)
    report = check_repository(repo)
    assert any(root.hex() in m and "missing" in m for m in errors(report))
    assert any("the journal names index file" in m for m in errors(report))
    assert len(warnings(report)) == len(helpers.pack_files(backend.root))


# -- (d) damaged snapshot file -------------------------------------------------------------
@pytest.mark.parametrize("pos", [0, 10, -1])
def test_flipped_snapshot_byte_is_reported(repo, backend, tmp_path, helpers, pos) -> None:
    good = helpers.make_snapshot(repo, 5, seed=1)
    bad = helpers.make_snapshot(repo, 5, seed=2, course="other")
    path = backend.root / repo.record_key(bad.snap_id)
    helpers.flip_byte(path, pos % path.stat().st_size, 0x01)
    report = check_repository(repo)
    errs = errors(report)
    assert len(errs) == 1 and bad.snap_id in errs[0], errs
    assert good.snap_id not in errs[0]
    # a fresh catalog never lists the damaged snapshot as usable
    with fresh(backend, tmp_path / "c-new") as again:
        assert [s.id for s in again.snapshots()] == [good.snap_id]


def test_deleted_pack_is_reported(repo, backend, helpers) -> None:
    made = helpers.make_snapshot(repo, 20)
    [pack] = helpers.pack_files(backend.root)
    pack.unlink()
    report = check_repository(repo, read_data=True)
    assert errors(report) and all(pack.name in m and "missing" in m for m in errors(report))
    with pytest.raises(ObjectMissingError):
        repo.get(next(iter(made.objects)))


def test_corrupt_index_file_is_reported(repo, backend, helpers) -> None:
    helpers.make_snapshot(repo, 20)
    [key] = [k for k, _ in backend.list("index/")]
    path = backend.root / key
    helpers.flip_byte(path, 40, 0x10)
    report = check_repository(repo)
    assert any(path.name in m and "corrupt" in m for m in errors(report))


def test_get_with_corrupt_zstd_frame_header(repo, backend, tmp_path, helpers) -> None:
    """Regression: a corrupt frame content size used to make get() raise MemoryError."""
    payload = b"hello world " * 8000
    with repo.writer() as w:
        oid = w.put(ObjectType.BLOB, payload)
    [pack] = helpers.pack_files(backend.root)
    [(_boff, payload_at, _stored, codec)] = helpers.block_payloads(pack.read_bytes())
    assert codec == CODEC_ZSTD
    helpers.flip_byte(pack, payload_at + 4, 0x40)  # frame header descriptor
    with fresh(backend, tmp_path / "c1") as again, pytest.raises(CorruptionError):
        again.get(oid)


# -- (e) a flipped byte anywhere: right bytes or a coursevault error -------------------------
def test_get_with_corrupt_entry_type_byte(repo, backend, tmp_path, helpers) -> None:
    """Regression: ObjectType(t) of a corrupt entry type byte raised ValueError."""
    with repo.writer() as w:
        a = w.put(ObjectType.BLOB, b"first object " * 10)
        w.put(ObjectType.BLOB, b"second object " * 10)
    [pack] = helpers.pack_files(backend.root)
    [(boff, _at, _stored, _codec)] = helpers.block_payloads(pack.read_bytes())
    second_entry_type = boff + BLOCK_HEAD.size + ENTRY.size
    data = pack.read_bytes()
    helpers.flip_byte(pack, second_entry_type, data[second_entry_type])  # type byte -> 0
    with fresh(backend, tmp_path / "c1") as again:
        try:
            got = again.get(a)  # the first object's own entry is intact
        except CoursevaultError:
            return
        assert got == (ObjectType.BLOB, b"first object " * 10)


# -- (e) a flipped byte anywhere: right bytes or a coursevault error -------------------------
class FuzzTarget:
    """A one-pack repository to damage (short repr: hypothesis prints it on failure)."""

    def __init__(self, root: Path, helpers) -> None:
        self.backend = LocalBackend(root / "repo")
        self.cache = root / "cache"
        Repository.init(self.backend, block_size=2048)
        rng = random.Random(99)
        self.objects: dict[bytes, tuple[ObjectType, bytes]] = {}
        with Repository.open(self.backend, cache_dir=self.cache) as repo, repo.writer() as w:
            for i in range(40):
                size = rng.choice([0, 1, 50, 300, 900, 1500])
                p = helpers.random_payload(rng, size, compressible=i % 3 != 0)
                kind = ObjectType.TREE if i % 5 == 0 else ObjectType.BLOB
                if kind is ObjectType.TREE:
                    p = b"\x00" + p
                self.objects[w.put(kind, p)] = (kind, p)
        [self.pack] = helpers.pack_files(self.backend.root)
        self.original = self.pack.read_bytes()
        blocks = helpers.block_payloads(self.original)
        assert len(blocks) >= 5 and {c for *_x, c in blocks} == {CODEC_RAW, CODEC_ZSTD}
        # Offsets the fuzzer must not pick (none today; kept for known, documented bugs).
        self.skip: set[int] = set()

    def __repr__(self) -> str:
        return f"FuzzTarget({self.pack.name}, {len(self.original)} bytes)"


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory, helpers) -> FuzzTarget:
    return FuzzTarget(tmp_path_factory.mktemp("fuzz"), helpers)


@settings(
    database=None,
    deadline=None,
    max_examples=120,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.data(), st.integers(1, 255))
def test_random_flip_never_returns_wrong_bytes(fuzz_target, data, mask) -> None:
    """get() returns exactly what was put or raises a CoursevaultError, never anything else."""
    t = fuzz_target
    offset = data.draw(
        st.integers(0, len(t.original) - 1).filter(lambda o: o not in t.skip), label="offset"
    )
    damaged = bytearray(t.original)
    damaged[offset] ^= mask
    t.pack.write_bytes(bytes(damaged))
    try:
        # a new Repository object for every example: no block or location cached from before
        with Repository.open(LocalBackend(t.backend.root), cache_dir=t.cache, sync=False) as repo:
            for oid, want in t.objects.items():
                try:
                    got = repo.get(oid)
                except CoursevaultError:
                    continue
                assert got == want, f"wrong bytes for {oid.hex()} after flipping offset {offset}"
            # and check --read-data always notices, naming the pack
            report = check_repository(repo, read_data=True)
            assert any(t.pack.name in p.message for p in report.errors), report.problems
    finally:
        t.pack.write_bytes(t.original)


def test_catalog_rows_out_of_step_are_found_across_batches(
    repo, helpers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check merges the catalog with the index files in id order, a few rows
    at a time: a moved row, a lost one and the last one are each counted;
    a lost row of an object no snapshot reaches is not."""
    made = helpers.make_snapshot(repo, 12)
    gone = helpers.make_snapshot(repo, 5, seed=1, course="course-2")
    repo.delete_snapshot(gone.snap_id)
    monkeypatch.setattr(check, "CATALOG_BATCH", 3)
    assert check_repository(repo).ok
    ids = sorted(made.objects)
    db = repo.catalog._raw
    db.execute('UPDATE cv_locations SET "offset" = "offset" + 1 WHERE id = ?', (ids[0],))
    for oid in (ids[5], max([*ids, made.root]), min(gone.objects)):
        db.execute("DELETE FROM cv_locations WHERE id = ?", (oid,))
    db.commit()
    [problem] = errors(check_repository(repo))
    assert "3 reachable objects are not located where the index files say" in problem
    assert ids[0].hex() in problem and ids[5].hex() in problem
