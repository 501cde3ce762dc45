"""Fixtures for the storage-layer tests.

Every repository lives in ``tmp_path`` and every catalog in ``tmp_path/"cache"``
(never in ``~/.cache``).  ``XDG_CACHE_HOME`` and the temporary folder are pointed
into ``tmp_path`` as well, so a test that forgets ``cache_dir`` still cannot touch
the user's cache, and a killed writer leaves nothing in /tmp.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from coursevault.store.backend import LocalBackend
from coursevault.store.ids import ObjectId, ObjectType
from coursevault.store.pack import BLOCK_HEAD, ENTRY, iter_blocks
from coursevault.store.repository import Repository


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep caches and temporary files (e.g. a session's pending index) in tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # inherited by subprocesses
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "repo")


@pytest.fixture
def repo(backend: LocalBackend, cache_dir: Path) -> Iterator[Repository]:
    Repository.init(backend)
    r = Repository.open(backend, cache_dir=cache_dir)
    try:
        yield r
    finally:
        r.close()


@dataclass
class Made:
    """What :func:`make_snapshot` stored."""

    snap_id: str
    root: ObjectId
    objects: dict[ObjectId, bytes] = field(default_factory=dict)  # blobs only
    record: dict = field(default_factory=dict)


def snapshot_record(root: ObjectId, course: str = "course-1", epoch: float = 1000.0) -> dict:
    return {
        "course": course,
        "time": "2024-01-01T00:00:00Z",
        "epoch": epoch,
        "root": root.hex(),
        "parents": [],
    }


def random_payload(rng: random.Random, size: int, compressible: bool) -> bytes:
    if compressible:
        words = [b"<record>", b"</record>", b"course", b"section", b"quiz", b"forum", b" "]
        out = bytearray()
        while len(out) < size:
            out += rng.choice(words)
            out += str(rng.randrange(1000)).encode()
        return bytes(out[:size])
    return rng.randbytes(size)


def make_snapshot(
    repo: Repository,
    n: int,
    *,
    seed: int = 0,
    size: int = 300,
    compressible: bool = True,
    course: str = "course-1",
    epoch: float = 1000.0,
) -> Made:
    """Store ``n`` distinct random blobs and a root tree naming them; commit a snapshot."""
    rng = random.Random(seed)
    made = Made("", b"")
    with repo.writer() as w:
        for i in range(n):
            payload = f"{seed}:{i}:".encode() + random_payload(rng, size, compressible)
            made.objects[w.put(ObjectType.BLOB, payload)] = payload
        made.root = w.put_tree(list(made.objects), f"root of {n} objects".encode())
        made.record = snapshot_record(made.root, course, epoch)
        snap_id = w.commit(made.record)
    assert snap_id is not None
    made.snap_id = snap_id
    return made


@pytest.fixture
def snapshot_maker() -> Callable[..., Made]:
    """``snapshot_maker(repo, n, **options)`` -> :class:`Made` (a committed snapshot)."""
    return make_snapshot


def pack_files(root: Path) -> list[Path]:
    return sorted(
        p for p in (root / "packs").rglob("*") if p.is_file() and not p.name.startswith(".")
    )


def block_payloads(data: bytes) -> list[tuple[int, int, int, int]]:
    """(block offset, payload offset, payload length, codec) of every block of a pack."""
    out = []
    for boff, _blen in iter_blocks(data):
        _m, codec, stored_len, _raw, n = BLOCK_HEAD.unpack_from(data, boff)
        out.append((boff, boff + BLOCK_HEAD.size + n * ENTRY.size, stored_len, codec))
    return out


@pytest.fixture(scope="session")
def helpers() -> SimpleNamespace:
    """The helper functions above, for test modules (which do not import conftest)."""
    return SimpleNamespace(
        make_snapshot=make_snapshot,
        snapshot_record=snapshot_record,
        random_payload=random_payload,
        pack_files=pack_files,
        block_payloads=block_payloads,
        flip_byte=flip_byte,
    )


def flip_byte(path: Path, offset: int, mask: int = 0xFF) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))
