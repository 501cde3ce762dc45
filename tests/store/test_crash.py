"""A writer killed with SIGKILL in the middle of a session leaves a sound repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.ids import ObjectType
from coursevault.store.locks import Lock, list_locks
from coursevault.store.repository import Repository
from coursevault.store.treecodec import decode_tree

PACKS_BEFORE_KILL = 5

WRITER = """
import json, random, sys
from coursevault.store.backend import LocalBackend
from coursevault.store.ids import ObjectType
from coursevault.store.repository import Repository

root_dir, cache = sys.argv[1:3]
repo = Repository.open(LocalBackend(root_dir), cache_dir=cache)

# 1. one complete, committed snapshot
with repo.writer() as w:
    ids = [w.put(ObjectType.BLOB, b"committed %d " % i * 50) for i in range(300)]
    root = w.put_tree(ids, b"committed root")
    snap = w.commit({"course": "c", "time": "t", "epoch": 1.0, "root": root.hex(), "parents": []})
print(json.dumps({"snap": snap, "root": root.hex()}), flush=True)

# 2. a long session that is killed before it commits
rng = random.Random(1)
w = repo.writer()
packs = 0
for i in range(4000):
    w.put(ObjectType.BLOB, rng.randbytes(3000 + i % 500))
    if w.stats.packs != packs:
        packs = w.stats.packs
        print("pack", packs, flush=True)
print("done", flush=True)
sys.stdin.readline()  # never commit: wait to be killed
"""


def test_sigkill_mid_session_leaves_a_sound_repository(tmp_path: Path) -> None:
    root_dir = tmp_path / "repo"
    backend = LocalBackend(root_dir)
    Repository.init(backend, pack_size=64 * 1024)
    cache = tmp_path / "cache"

    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root_dir), str(cache)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        assert first, proc.stderr.read()
        committed = json.loads(first)
        seen = 0
        while seen < PACKS_BEFORE_KILL:
            line = proc.stdout.readline()
            assert line.startswith("pack "), line + proc.stderr.read()
            seen += 1
        proc.kill()  # SIGKILL, while it keeps writing packs
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -9

    # the writer's lock file is left behind, but is recognised as stale
    [lock] = list_locks(backend)
    assert lock.is_stale()
    written = [k for k, _ in backend.list("packs/")]
    assert len(written) >= 1 + PACKS_BEFORE_KILL

    for cache_dir in (cache, tmp_path / "fresh-cache"):  # the dead writer's catalog, and a new one
        with Repository.open(LocalBackend(root_dir), cache_dir=cache_dir) as repo:
            report = check_repository(repo, read_data=True)
            assert report.ok, report.errors
            warns = [p.message for p in report.problems]
            assert all(
                "not named by any index" in m or m.startswith("temporary file") for m in warns
            ), warns
            unreferenced = [m for m in warns if "unreferenced" in m]
            assert len(unreferenced) >= PACKS_BEFORE_KILL
            indexed = {
                loc.pack.hex()
                for name in repo.catalog.index_files()
                for _oid, loc in repo.read_index(name)
            }
            assert indexed  # the committed session's packs
            orphans = {k.rsplit("/", 1)[1] for k in written} - indexed
            assert len(orphans) == len(unreferenced)
            assert all(any(name in m for m in unreferenced) for name in orphans)

            [snap] = repo.snapshots()
            assert snap.id == committed["snap"] and snap.root == committed["root"]
            kind, body = repo.get(bytes.fromhex(snap.root))
            assert kind is ObjectType.TREE
            refs, tail = decode_tree(body)
            assert tail == b"committed root" and len(refs) == 300
            for i, oid in enumerate(refs):
                assert repo.get(oid) == (ObjectType.BLOB, b"committed %d " % i * 50)
            # nothing of the killed session is visible
            assert repo.catalog.count_objects() == 301

    # and the repository is fully usable: the stale lock blocks nobody
    with Repository.open(LocalBackend(root_dir), cache_dir=cache) as repo:
        Lock(backend, True, "prune").acquire().release()
        with repo.writer() as w:
            oid = w.put(ObjectType.BLOB, b"after the crash")
            top = w.put_tree([oid], b"")
            w.commit({"course": "c", "time": "t", "epoch": 2.0, "root": top.hex(), "parents": []})
        assert len(repo.snapshots()) == 2
        assert check_repository(repo, read_data=True).ok
