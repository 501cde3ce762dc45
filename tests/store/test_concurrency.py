"""Two processes writing into one repository at the same time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.ids import ObjectType, object_id
from coursevault.store.repository import Repository
from coursevault.store.treecodec import decode_tree, encode_tree

N_OBJECTS = 20_000
N_SHARED = 500  # both writers also store these same payloads
FANOUT = 1000  # refs per leaf tree; the root names the leaf trees

PAYLOAD_SRC = """
def payload(tag, i):
    # distinct per (tag, i), 40..250 bytes, XML-like so that blocks compress
    return (f"<rec writer='{tag}' n='{i}'>" + "forum post text " * (i % 13) + "</rec>").encode()
"""

WRITER = (
    PAYLOAD_SRC
    + """
import json, sys
from coursevault.store.backend import LocalBackend
from coursevault.store.ids import ObjectType
from coursevault.store.repository import Repository

root_dir, cache, tag, n, n_shared, fanout = sys.argv[1:7]
n, n_shared, fanout = int(n), int(n_shared), int(fanout)
repo = Repository.open(LocalBackend(root_dir), cache_dir=cache)
w = repo.writer()
print("ready", flush=True)
assert sys.stdin.readline().strip() == "go"
ids = [w.put(ObjectType.BLOB, payload(tag, i)) for i in range(n)]
ids += [w.put(ObjectType.BLOB, payload("shared", i)) for i in range(n_shared)]
assert len(set(ids)) == n + n_shared
leaves = [
    w.put_tree(ids[i : i + fanout], f"leaf {i}".encode()) for i in range(0, len(ids), fanout)
]
root = w.put_tree(leaves, f"root of {tag}".encode())
snap = w.commit({"course": f"course-{tag}", "time": "2024-05-01T00:00:00Z",
                 "epoch": 1714521600.0, "root": root.hex(), "parents": []})
print(json.dumps({"snap": snap, "root": root.hex(), "packs": w.stats.packs,
                  "new": w.stats.new_objects}), flush=True)
repo.close()
"""
)


def expected_ids(payload, tag: str, n_objects: int) -> set[bytes]:
    """Every object id writer ``tag`` stores: blobs, leaf trees and the root."""
    blobs = [object_id(ObjectType.BLOB, payload(tag, i)) for i in range(n_objects)]
    blobs += [object_id(ObjectType.BLOB, payload("shared", i)) for i in range(N_SHARED)]
    leaves = [
        object_id(ObjectType.TREE, encode_tree(blobs[i : i + FANOUT], f"leaf {i}".encode()))
        for i in range(0, len(blobs), FANOUT)
    ]
    root = object_id(ObjectType.TREE, encode_tree(leaves, f"root of {tag}".encode()))
    return {*blobs, *leaves, root}


def _payload_fn():
    ns: dict = {}
    exec(PAYLOAD_SRC, ns)
    return ns["payload"]


def test_two_concurrent_writers(tmp_path: Path) -> None:
    """Both writers share one SQLite catalog, as two backups on one host do by default;
    the final checks use a fresh catalog, so they see only what the repository holds."""
    n_objects = N_OBJECTS
    root_dir = tmp_path / "repo"
    backend = LocalBackend(root_dir)
    Repository.init(backend, pack_size=128 * 1024)
    # create the shared catalog up front, as a first backup on the host would have done
    Repository.open(backend, cache_dir=tmp_path / "cache").close()

    procs = {}
    counts = (n_objects, N_SHARED, FANOUT)
    for tag in ("a", "b"):
        cache = tmp_path / "cache"
        procs[tag] = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root_dir), str(cache), tag, *map(str, counts)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        # both are open and hold their shared locks before either writes an object
        for p in procs.values():
            assert p.stdout.readline().strip() == "ready"
        for p in procs.values():
            p.stdin.write("go\n")
            p.stdin.flush()
        results = {}
        for tag, p in procs.items():
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            results[tag] = json.loads(out.strip().splitlines()[-1])
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()

    for res in results.values():
        assert res["packs"] >= 10  # both really wrote many packs while the other did
        assert n_objects <= res["new"] <= n_objects + N_SHARED + n_objects // FANOUT + 2

    payload = _payload_fn()
    with Repository.open(LocalBackend(root_dir), cache_dir=tmp_path / "fresh-cache") as repo:
        snaps = {s.series: s for s in repo.snapshots()}
        assert set(snaps) == {"course-a", "course-b"}
        for tag, res in results.items():
            assert snaps[f"course-{tag}"].id == res["snap"]
            assert backend.read(f"refs/heads/course-{tag}").split(b"\n")[0].decode() == res["snap"]

        report = check_repository(repo, read_data=True)
        assert report.ok, report.errors[:5]
        assert all("unreferenced" not in p.message for p in report.problems)
        assert report.snapshots == 2
        everything = set().union(*(expected_ids(payload, tag, n_objects) for tag in results))
        assert {oid for oid, _loc in repo.catalog.iter_objects()} == everything
        assert report.objects == len(everything)
        assert report.reachable == len(everything)

        for tag, res in results.items():
            expected = [payload(tag, i) for i in range(n_objects)]
            expected += [payload("shared", i) for i in range(N_SHARED)]
            kind, body = repo.get(bytes.fromhex(res["root"]))
            assert kind is ObjectType.TREE
            leaves, _ = decode_tree(body)
            got_ids = []
            for leaf in leaves:
                kind, leaf_body = repo.get(leaf)
                assert kind is ObjectType.TREE
                got_ids += decode_tree(leaf_body)[0]
            assert got_ids == [object_id(ObjectType.BLOB, p) for p in expected]
            for oid, want in zip(got_ids, expected, strict=True):
                assert repo.get(oid) == (ObjectType.BLOB, want)
        assert list(backend.list("locks/")) == []
        assert list(backend.list_temporary()) == []


OPENER = """
import sys
from coursevault.store.backend import LocalBackend
from coursevault.store.repository import Repository
print("ready", flush=True)
sys.stdin.readline()
try:
    Repository.open(LocalBackend(sys.argv[1]), cache_dir=sys.argv[2]).close()
    print("ok")
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}"[:300])
"""


def test_first_concurrent_opens_of_a_shared_catalog(tmp_path: Path) -> None:
    """Regression: Catalog.__init__'s create_all() raced ('table cv_meta already exists')."""
    for trial in range(1):
        root_dir = tmp_path / f"repo{trial}"
        Repository.init(LocalBackend(root_dir))
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, str(root_dir), str(tmp_path / f"cache{trial}")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        try:
            for p in procs:
                assert p.stdout.readline().strip() == "ready"
            for p in procs:  # release all four at once
                p.stdin.write("go\n")
                p.stdin.flush()
            outcomes = [p.communicate(timeout=60)[0].strip() for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        assert outcomes == ["ok"] * 4, outcomes
