"""Dictionary blocks (codec 2): a session compresses against the small trees an
earlier session wrote, readers resolve the chain, prune and check follow it."""

from __future__ import annotations

import json
import os
import random
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from coursevault.errors import CorruptionError
from coursevault.store import objects as object_reads
from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.dictcache import DictionaryCache
from coursevault.store.dictionaries import DICT_MAGIC, DICT_WALK
from coursevault.store.ids import ObjectId, ObjectType, object_id
from coursevault.store.pack import BLOCK_HEAD, CODEC_ZSTD_DICT, iter_blocks, pack_key
from coursevault.store.prune import prune_repository
from coursevault.store.repository import Repository, snapshot_dictionary
from coursevault.store.treecodec import decode_tree, read_varint, write_varint

WORDS = ["forum", "post", "reply", "grade", "quiz", "attempt", "course", "section", "student"]


def record(night: int, i: int) -> bytes:
    """An XML-ish record as a nightly backup rewrites it: the same text as the
    night before (long, varied words) with one field changed."""
    rng = random.Random(i)
    text = " ".join(f"{rng.choice(WORDS)}{rng.randrange(10**6)}" for _ in range(60))
    return (
        f'<post id="{i}">\n  <discussion>{i % 7}</discussion>\n'
        f"  <modified>{1700000000 + night * 86400 + i}</modified>\n"
        f"  <subject>Re: {WORDS[i % len(WORDS)]}</subject>\n  <message>{text}</message>\n</post>\n"
    ).encode()


def night(
    repo: Repository, n: int, dictionary: ObjectId | None, count: int = 60
) -> tuple[str, ObjectId | None, dict[ObjectId, bytes], list[bytes]]:
    """One session of ``count`` new records; returns (snapshot, its dictionary, objects, packs)."""
    objects: dict[ObjectId, bytes] = {}
    with repo.writer(dictionary=dictionary) as w:
        for i in range(count):
            payload = record(n, i)
            objects[w.put_tree([], payload)] = payload
        root = w.put_tree(list(objects), f"night {n}".encode())
        made = w.make_dictionary()
        rec = {"course": "c", "time": "t", "epoch": float(n), "root": root.hex(), "parents": []}
        if made is not None:
            rec["dictionary"] = made.hex()
        snap = w.commit(rec)
    assert snap is not None
    return snap, made, objects, list(w._packs)


def codecs(backend: LocalBackend, packs: list[bytes]) -> set[int]:
    found = set()
    for pack in packs:
        data = backend.read(pack_key(pack))
        for boff, _blen in iter_blocks(data):
            found.add(BLOCK_HEAD.unpack_from(data, boff)[1])
    return found


def new_repo(tmp_path: Path, **init: int) -> tuple[LocalBackend, Repository]:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, **init)
    return backend, Repository.open(backend, cache_dir=tmp_path / "cache")


def fresh(backend: LocalBackend, cache: Path) -> Repository:
    return Repository.open(LocalBackend(backend.root), cache_dir=cache)


def series(tmp_path: Path, depth: int, nights: int, name: str = "repo"):
    backend = LocalBackend(tmp_path / name)
    Repository.init(backend, dictionary_depth=depth)
    repo = Repository.open(backend, cache_dir=tmp_path / f"{name}-cache")
    out = []
    dictionary = None
    for n in range(nights):
        snap, dictionary, objects, packs = night(repo, n, dictionary)
        out.append((snap, objects, packs, dictionary))
    return backend, repo, out


def test_a_night_compresses_against_the_night_before(tmp_path: Path) -> None:
    backend, _repo, nights = series(tmp_path, 8, 3)
    assert codecs(backend, nights[0][2]) != {CODEC_ZSTD_DICT}  # nothing to compress against
    assert CODEC_ZSTD_DICT in codecs(backend, nights[1][2])
    assert CODEC_ZSTD_DICT in codecs(backend, nights[2][2])

    plain_backend, _plain, plain_nights = series(tmp_path, 0, 3, "plain")
    for i in (1, 2):
        with_dict = sum(len(backend.read(pack_key(p))) for p in nights[i][2])
        without = sum(len(plain_backend.read(pack_key(p))) for p in plain_nights[i][2])
        assert with_dict < 0.5 * without, (i, with_dict, without)
    assert codecs(plain_backend, [p for n in plain_nights for p in n[2]]) <= {0, 1}

    # a reader with no cached dictionary resolves the chain
    reader = fresh(backend, tmp_path / "c2")
    for _snap, objects, _packs, _d in nights:
        for oid, payload in objects.items():
            assert reader.get(oid) == (ObjectType.TREE, b"\x00" + payload)
    assert check_repository(reader, read_data=True).ok


def test_chains_stop_at_the_repository_depth(tmp_path: Path) -> None:
    backend, _repo, nights = series(tmp_path, 2, 5)
    uses = [CODEC_ZSTD_DICT in codecs(backend, n[2]) for n in nights]
    # night 0 plain; 1 against 0 (depth 1); 2 against 1 (depth 2); 3 would be
    # depth 3: plain again, and the chain starts over
    assert uses == [False, True, True, False, True]
    reader = fresh(backend, tmp_path / "c2")
    for _snap, objects, _packs, _d in nights:
        for oid, payload in objects.items():
            assert reader.get(oid)[1] == b"\x00" + payload


def test_the_same_session_again_makes_no_new_dictionary(tmp_path: Path) -> None:
    _backend, repo, nights = series(tmp_path, 8, 2)
    before = repo.catalog.count_objects()
    _snap, made, _objects, packs = night(repo, 1, nights[1][3])  # night 1 once more
    assert made == nights[1][3]
    assert repo.catalog.count_objects() == before and packs == []


def test_an_unusable_dictionary_means_plain_blocks(tmp_path: Path) -> None:
    backend, repo = new_repo(tmp_path)
    _snap, _made, objects, packs = night(repo, 0, b"\x07" * 32)
    assert CODEC_ZSTD_DICT not in codecs(backend, packs)
    assert all(repo.get(oid)[1] == b"\x00" + p for oid, p in objects.items())


def test_prune_keeps_what_a_kept_block_compresses_against(tmp_path: Path) -> None:
    backend, repo, nights = series(tmp_path, 8, 3)
    for snap, *_rest in nights[:2]:
        repo.delete_snapshot(snap)  # the nights whose trees night 2 compresses against
    report = prune_repository(repo)
    assert report.snapshots == 1
    reader = fresh(backend, tmp_path / "c2")
    for oid, payload in nights[2][1].items():
        assert reader.get(oid)[1] == b"\x00" + payload
    assert check_repository(reader, read_data=True).ok
    prune_repository(reader)  # may free what only repacked blocks needed
    again = prune_repository(reader)  # settled: nothing more to free
    assert again.packs_deleted == 0 and again.bytes_freed == 0


def test_prune_frees_a_dictionary_no_kept_block_needs(tmp_path: Path) -> None:
    backend, repo, nights = series(tmp_path, 1, 4)  # depth 1: nights 1 and 3 use one
    for snap, *_rest in nights[:3]:
        repo.delete_snapshot(snap)
    # night 3's blocks need night 2's dictionary and trees; nights 0 and 1 nothing
    prune_repository(repo)
    reader = fresh(backend, tmp_path / "c2")
    for n in (0, 1):
        assert not any(reader.catalog.has(oid) for oid in nights[n][1])
    assert all(reader.catalog.has(oid) for oid in nights[2][1])
    assert check_repository(reader, read_data=True).ok


def test_check_names_a_block_whose_dictionary_is_gone(tmp_path: Path) -> None:
    backend, repo, nights = series(tmp_path, 8, 2)
    repo.delete_snapshot(nights[0][0])
    for pack in nights[0][2]:  # night 0's packs hold the dictionary and its trees
        backend.delete(pack_key(pack))
    report = check_repository(fresh(backend, tmp_path / "c2"), read_data=True)
    assert not report.ok
    assert any("dictionary" in p.message for p in report.errors), report.errors


def test_plain_check_names_a_block_whose_dictionary_is_gone(tmp_path: Path) -> None:
    """Without --read-data too: the dictionaries blocks name are checked."""
    backend, repo, nights = series(tmp_path, 8, 2)
    repo.delete_snapshot(nights[0][0])
    for pack in nights[0][2]:
        backend.delete(pack_key(pack))
    report = check_repository(fresh(backend, tmp_path / "c2"))
    assert any("(its dictionary)" in p.message for p in report.errors), report.errors


def test_check_hashes_each_object_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tree of every snapshot, and every object a dictionary is read
    from, is read and hashed once however many snapshots and dictionaries
    name it: a night's dictionary names the trees its walk just read, and
    the next night's blocks are decoded with it."""
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, dictionary_depth=8)
    repo = Repository.open(backend, cache_dir=tmp_path / "cache")
    dictionary = None
    for n in range(6):  # a third of the records change each night, the rest are shared
        with repo.writer(dictionary=dictionary) as w:
            ids = [w.put_tree([], record(n if i % 3 == 0 else 0, i)) for i in range(60)]
            root = w.put_tree(ids, f"night {n}".encode())
            dictionary = w.make_dictionary(walk=root)  # a walk first, then lists
            assert dictionary is not None
            rec = {"course": "c", "time": "t", "epoch": float(n), "root": root.hex()}
            w.commit({**rec, "parents": [], "dictionary": dictionary.hex()})
        assert dictionary_flags(repo, dictionary) == (DICT_WALK if n == 0 else 1)
    hashed: Counter[bytes] = Counter()

    def counting(kind: ObjectType, payload: bytes | memoryview) -> bytes:
        oid = object_id(kind, payload)
        hashed[oid] += 1
        return oid

    monkeypatch.setattr(object_reads, "object_id", counting)
    report = check_repository(fresh(backend, tmp_path / "c2"))
    assert report.ok, report.problems
    assert report.reachable == len(hashed) > 6 * 20  # every tree and dictionary object
    assert max(hashed.values()) == 1, [(k.hex(), v) for k, v in hashed.items() if v > 1][:3]


def test_a_version_1_repository_never_gets_dictionary_blocks(tmp_path: Path) -> None:
    """Readers of format 1 know no codec 2: such a repository stays plain."""
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    cfg = json.loads(backend.read("config"))
    cfg["version"] = 1
    del cfg["dictionary_depth"]
    backend.write("config", json.dumps(cfg).encode())
    repo = Repository.open(backend, cache_dir=tmp_path / "cache")
    dictionary = None
    for n in range(3):
        _snap, dictionary, _objects, packs = night(repo, n, dictionary)
        assert dictionary is None
        assert codecs(backend, packs) <= {0, 1}
        for pack in packs:
            assert backend.read(pack_key(pack))[4] == 1  # pack version 1


def test_a_malformed_dictionary_field_is_ignored(tmp_path: Path) -> None:
    """Check, prune and the next session treat it as no dictionary, not a crash."""
    _backend, repo = new_repo(tmp_path)
    with repo.writer() as w:
        root = w.put_tree([], b"root")
        rec = {"course": "c", "time": "t", "epoch": 1.0, "root": root.hex(), "parents": []}
        snap = w.commit({**rec, "dictionary": "not hex at all"})
    assert snap is not None
    assert snapshot_dictionary(repo.read_snapshot(snap)) is None
    assert check_repository(repo, read_data=True).ok
    assert prune_repository(repo).snapshots == 1


# -- walk dictionaries (format 3): a first night names its upper trees by one id --


def upper_night(
    repo: Repository, n: int, dictionary: ObjectId | None, *, walk: bool = True
) -> tuple[str, ObjectId | None, dict[ObjectId, bytes], ObjectId]:
    """A course-like tree: root -> 12 groups -> 8 records each, each record
    naming a file (a blob); every night edits one record of each group, so
    every group and the root change."""
    objects: dict[ObjectId, bytes] = {}
    with repo.writer(dictionary=dictionary) as w:
        groups = []
        for g in range(12):
            leaves = []
            for i in range(8):
                payload = record(n if i == n % 8 else 0, g * 8 + i)
                blob = w.put(ObjectType.BLOB, b"file %d of night %d " % (i, n) * 40)
                leaves.append(w.put_tree([blob], payload))
                objects[leaves[-1]] = payload
            body = b"group %d: " % g + b" ".join(record(0, g * 8 + i)[:40] for i in range(8))
            groups.append(w.put_tree(leaves, body))
        root = w.put_tree(groups, f"night {n}".encode())
        made = w.make_dictionary(walk=root if walk else None)
        rec = {"course": "c", "time": "t", "epoch": float(n), "root": root.hex(), "parents": []}
        if made is not None:
            rec["dictionary"] = made.hex()
        snap = w.commit(rec)
    assert snap is not None
    return snap, made, objects, root


def spec_walk(repo: Repository, root: ObjectId) -> list[ObjectId]:
    """The trees a walk dictionary's content is made of, as docs/format.md
    words it (a small course: no budget to stop at)."""
    met = {root: (1, 0)}  # id -> (priority, order met)
    taken: list[ObjectId] = []
    while len(taken) < len(met):
        oid = min((o for o in met if o not in taken), key=lambda o: met[o])
        taken.append(oid)
        kind, payload = repo.get(oid)
        if kind != ObjectType.TREE:
            continue
        refs = decode_tree(payload)[0]
        for i, ref in enumerate(refs):
            met.setdefault(ref, (met[oid][0] * (len(refs) - i), len(met)))
    return [o for o in taken if repo.get(o)[0] == ObjectType.TREE]


def dictionary_flags(repo: Repository, dict_id: ObjectId) -> int:
    body = decode_tree(repo.get(dict_id)[1])[1]
    return read_varint(body, read_varint(body, len(DICT_MAGIC))[1])[0]


def test_a_walk_dictionary_names_one_tree_and_the_next_night_uses_it(tmp_path: Path) -> None:
    backend, repo = new_repo(tmp_path)
    _s0, walk, _o0, root0 = upper_night(repo, 0, None)
    assert walk is not None and dictionary_flags(repo, walk) == DICT_WALK
    assert decode_tree(repo.get(walk)[1])[0] == [root0]  # one id, whatever the budget
    depth, content = repo.dictionary(walk)
    # the tail of every list first: root, last group, its last record, ...; no files
    order = spec_walk(repo, root0)
    groups = decode_tree(repo.get(root0)[1])[0]
    assert order[:3] == [root0, groups[-1], decode_tree(repo.get(groups[-1])[1])[0][-1]]
    assert len(order) == 1 + 12 + 96
    assert depth == 1 and content == b"".join(repo.get(t)[1] for t in order)
    before = repo.stats()["pack_bytes"]
    _s1, _d1, objects, _root1 = upper_night(repo, 1, walk)
    with_walk = repo.stats()["pack_bytes"] - before

    # the same second night compressed against nothing
    other = LocalBackend(tmp_path / "other")
    Repository.init(other)
    plain = Repository.open(other, cache_dir=tmp_path / "c-other")
    upper_night(plain, 0, None)
    before = plain.stats()["pack_bytes"]
    upper_night(plain, 1, None)
    assert with_walk < plain.stats()["pack_bytes"] - before

    reader = fresh(backend, tmp_path / "c2")  # resolves the walk from scratch
    assert all(decode_tree(reader.get(oid)[1])[1] == p for oid, p in objects.items())
    assert check_repository(reader, read_data=True).ok


def test_a_walk_leaves_no_decoded_block_behind(tmp_path: Path) -> None:
    """The blocks a walk decodes are the snapshot before's, which the night
    asks nothing more of: they are let go once the content is read (a big
    course's walk filled the cache of decoded blocks for the rest of the
    night), those the caller held before stay, and the content is the same."""
    backend, repo = new_repo(tmp_path, pack_size=16 * 1024, block_size=4096)
    _s0, walk, _o0, root0 = upper_night(repo, 0, None)
    assert walk is not None
    reader = fresh(backend, tmp_path / "c2")  # no walk cached on disk
    loc = reader.catalog.lookup(walk)
    assert loc is not None
    reader.read_at(walk, loc)  # a block the caller holds stays
    held = reader.decoded_blocks()
    assert len(held) == 1
    _depth, content = reader.dictionary(walk)
    assert reader.decoded_blocks() == held
    assert reader._blocks_bytes == sum(len(b[0]) for b in reader._blocks.values())
    assert content == b"".join(reader.get(t)[1] for t in spec_walk(reader, root0))


def test_a_walk_keeps_no_allocation_per_tree_it_reads(tmp_path: Path) -> None:
    """The trees a walk reads are gathered in one buffer: kept one by one
    (up to 4 MiB of them), those over pymalloc's 512 bytes sat in the C heap
    between the blocks decoded after them, holes the process kept."""
    backend, repo = new_repo(tmp_path, pack_size=16 * 1024, block_size=4096)
    _s0, _walk, _o0, root0 = upper_night(repo, 0, None)
    reader = fresh(backend, tmp_path / "c2")
    tracemalloc.start(40)
    try:
        _depth, content, _sources = reader._walk_trees(root0)
        traces = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, "*/store/reach.py", all_frames=True)]).traces
    finally:
        tracemalloc.stop()
    big = [t for t in traces if t.size >= 200]  # the records are 800 bytes
    assert len(big) < 8, f"{len(big)} allocations of the walk's trees still held"
    assert bytes(content) == b"".join(reader.get(t)[1] for t in spec_walk(reader, root0))


def test_prune_keeps_the_walked_trees_not_what_they_name(tmp_path: Path) -> None:
    backend, repo = new_repo(tmp_path, pack_size=16 * 1024, block_size=4096)
    snap0, walk, objects0, root0 = upper_night(repo, 0, None)
    _s1, _d1, objects1, _r1 = upper_night(repo, 1, walk)
    repo.delete_snapshot(snap0)
    for _ in range(4):
        if prune_repository(repo).packs_deleted == 0:
            break
    reader = fresh(backend, tmp_path / "c2")
    assert walk is not None and reader.catalog.has(walk) and reader.catalog.has(root0)
    assert reader.dictionary(walk)[1] == repo.dictionary(walk)[1]  # the same walk
    # night 0's files are named by walked trees, but are not content: freed
    files0 = {decode_tree(p)[0][0] for p in (repo.get(o)[1] for o in objects0)}
    files1 = {decode_tree(p)[0][0] for p in (repo.get(o)[1] for o in objects1)}
    assert files0 - files1 and not any(reader.catalog.has(f) for f in files0 - files1)
    assert all(reader.catalog.has(oid) for oid in objects0)  # the records are content
    assert all(decode_tree(reader.get(oid)[1])[1] == p for oid, p in objects1.items())
    assert check_repository(reader, read_data=True).ok


def test_a_walk_counts_the_depth_of_the_blocks_it_reads(tmp_path: Path) -> None:
    """A walk may read trees an earlier chain compressed: its depth says so,
    and a writer whose limit it passes compresses without it."""
    backend, repo, nights = series(tmp_path, 3, 3)  # list dictionaries, depths 0, 1, 2
    deepest = list(nights[2][1])  # night 2's trees sit in depth-2 blocks
    with repo.writer() as w:
        root = w.put_tree(deepest, b"a new root over old trees")
        walk = w.make_dictionary(walk=root)
        w.commit({"course": "c", "time": "t", "epoch": 9.0, "root": root.hex(), "parents": []})
    assert walk is not None and dictionary_flags(repo, walk) == DICT_WALK
    assert repo.dictionary(walk)[0] == 3
    _snap, _made, _objects, packs = night(repo, 10, walk)  # 3 is the limit: usable
    assert CODEC_ZSTD_DICT in codecs(backend, packs)


def test_a_version_2_repository_gets_list_dictionaries_only(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    cfg = json.loads(backend.read("config"))
    cfg["version"] = 2
    backend.write("config", json.dumps(cfg).encode())
    repo = Repository.open(backend, cache_dir=tmp_path / "cache")
    _s, made, _o, _r = upper_night(repo, 0, None)
    assert made is not None and dictionary_flags(repo, made) == 0


def test_a_malformed_walk_dictionary_is_corruption(tmp_path: Path) -> None:
    _backend, repo = new_repo(tmp_path)
    with repo.writer() as w:
        a = w.put_tree([], b"a tree")
        body = bytearray(DICT_MAGIC)
        write_varint(body, 1)
        write_varint(body, DICT_WALK)
        bad = w.put_tree([a, a], bytes(body))  # a walk names exactly one tree
        w.commit({"course": "c", "time": "t", "epoch": 1.0, "root": a.hex(), "parents": []})
    with pytest.raises(CorruptionError, match="names one tree"):
        repo.dictionary(bad)


def test_a_night_reaches_the_far_end_of_a_big_walk(tmp_path: Path) -> None:
    """A walk's content is up to 4 MiB: a block must find matches at its far
    end, not only in the last megabyte or two (the window and hash tables of
    dictionary compression are sized for it)."""
    backend, repo = new_repo(tmp_path)
    rng = random.Random(5)
    pages = [rng.randbytes(60_000) for _ in range(56)]  # incompressible, 3.4 MB
    with repo.writer() as w:
        groups = [
            w.put_tree([w.put_tree([], page)], b"group %d" % i) for i, page in enumerate(pages)
        ]
        root = w.put_tree(groups, b"night 0")
        walk = w.make_dictionary(walk=root)
        w.commit({"course": "c", "time": "t", "epoch": 0.0, "root": root.hex(), "parents": []})
    assert walk is not None
    content = repo.dictionary(walk)[1]
    # the root, the last group, then the last page: 3 MB before the end
    assert len(content) > 3_000_000 and content.find(pages[-1]) < 3_000
    before = repo.stats()["pack_bytes"]
    with repo.writer(dictionary=walk) as w:
        edited = w.put_tree([], pages[-1][:30_000] + b"edited" + pages[-1][30_000:])
        w.commit({"course": "c", "time": "t", "epoch": 1.0, "root": edited.hex(), "parents": []})
    assert repo.stats()["pack_bytes"] - before < 2_000  # not 60 kB: matched 3 MB back
    reader = fresh(backend, tmp_path / "c2")
    assert decode_tree(reader.get(edited)[1])[1][:30_000] == pages[-1][:30_000]


def test_walks_are_cached_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next process reads a walk dictionary's content from the local
    cache, not by walking again; a damaged file there is ignored, never used.
    Lists, quick to rebuild, are not kept."""
    backend, repo = new_repo(tmp_path)
    _s0, walk, _o0, _r0 = upper_night(repo, 0, None)
    _s1, listed, _o1, _r1 = upper_night(repo, 1, walk)
    assert walk is not None and listed is not None
    depth, content = repo.dictionary(walk)
    repo.dictionary(listed)
    folder = tmp_path / "cache" / repo.id / "dictionaries"
    assert {f.name for f in folder.iterdir()} == {walk.hex()}

    def no_walk(self: Repository, root: ObjectId) -> None:
        raise AssertionError("walked again")

    again = Repository.open(LocalBackend(backend.root), cache_dir=tmp_path / "cache")
    with monkeypatch.context() as m:
        m.setattr(Repository, "_walk_trees", no_walk)
        assert again.dictionary(walk) == (depth, content)

    data = bytearray((folder / walk.hex()).read_bytes())
    data[-1] ^= 0xFF
    (folder / walk.hex()).write_bytes(bytes(data))
    third = Repository.open(LocalBackend(backend.root), cache_dir=tmp_path / "cache")
    assert third.dictionary(walk) == (depth, content)  # walked again from the objects
    assert DictionaryCache(folder).get(walk) == (depth, content)  # and rewritten


def test_the_dictionary_cache_drops_the_least_recently_used(tmp_path: Path) -> None:
    """A site's night reads every course's walk in turn: what was read lately
    stays, whatever was written last, until the folder is over its bytes."""
    cache = DictionaryCache(tmp_path / "d", keep_bytes=4 * (41 + 9))  # four header + content
    ids = [bytes([i]) * 32 for i in range(6)]
    for i, oid in enumerate(ids[:4]):
        cache.put(oid, 1, b"content %d" % i)
        os.utime(tmp_path / "d" / oid.hex(), (1000 + i, 1000 + i))
    assert cache.get(ids[0]) == (1, b"content 0")  # used: now the most recent
    cache.put(ids[4], 1, b"content 4")  # over by one: the least recently used goes
    assert cache.get(ids[1]) is None
    assert cache.get(ids[0]) == (1, b"content 0") and cache.get(ids[2]) == (1, b"content 2")
    cache.put(ids[5], 1, b"x" * 1000)  # larger than the budget: kept alone
    assert [p.name for p in (tmp_path / "d").iterdir()] == [ids[5].hex()]
