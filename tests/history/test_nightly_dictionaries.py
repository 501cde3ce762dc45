"""Ingest hands each night's dictionary to the next night of the same course."""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coursevault.moodle2 import archive
from coursevault.restore.export import export_snapshot
from coursevault.snapshot import source
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.dictionaries import DICT_MAGIC, DICT_WALK
from coursevault.store.pack import BLOCK_HEAD, CODEC_ZSTD_DICT, iter_blocks
from coursevault.store.repository import Repository, snapshot_dictionary
from coursevault.store.treecodec import decode_tree, read_varint


def _codecs(root: Path) -> list[int]:
    out = []
    for pack in sorted((root / "packs").rglob("*")):
        if pack.is_file() and not pack.name.startswith("."):
            data = pack.read_bytes()
            out += [BLOCK_HEAD.unpack_from(data, boff)[1] for boff, _len in iter_blocks(data)]
    return out


def _flags(repo: Repository, dict_id: bytes | None) -> int:
    assert dict_id is not None
    body = decode_tree(repo.get(dict_id)[1])[1]
    return read_varint(body, read_varint(body, len(DICT_MAGIC))[1])[0]


def _posts(night: int) -> dict[int, list[tuple[int, str]]]:
    """Forty long posts, each edited a little every night (as a forum's are)."""
    rng = random.Random(1)
    base = [" ".join(f"w{rng.randrange(10**6)}" for _ in range(80)) for _ in range(40)]
    return {1: [(100 + i, f"{text} edited on night {night}") for i, text in enumerate(base)]}


def test_nights_of_a_course_compress_against_the_night_before(
    tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    repo = Repository.open(backend, cache_dir=tmp_path / "cache")
    snaps, paths = [], []
    for night in range(3):
        path = write_course(tmp_path / f"n{night}.mbz", _posts(night), 1700000000 + night * 86400)
        result = ingest_archive(repo, str(path))  # the course key comes from the archive
        snaps.append(result.snapshot)
        paths.append(path)
        assert "dictionary" in repo.read_snapshot(result.snapshot)
    assert CODEC_ZSTD_DICT in _codecs(tmp_path / "repo")
    # the first night leaves a walk of its own root, later nights a list
    flags = [_flags(repo, snapshot_dictionary(repo.read_snapshot(s))) for s in snaps]
    assert flags == [DICT_WALK, 1, 1]
    root = bytes.fromhex(repo.read_snapshot(snaps[0])["root"])
    assert decode_tree(repo.get(snapshot_dictionary(repo.read_snapshot(snaps[0])))[1])[0] == [root]

    fresh = Repository.open(backend, cache_dir=tmp_path / "cache2")  # no cached dictionaries
    for snap, path in zip(snaps, paths, strict=True):
        out = tmp_path / f"{snap[:8]}.mbz"
        export_snapshot(fresh, snap, str(out))
        assert gzip.decompress(out.read_bytes()) == gzip.decompress(path.read_bytes())
    assert check_repository(fresh, read_data=True).ok


def test_another_course_does_not_use_the_dictionary(
    tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    repo = Repository.open(backend, cache_dir=tmp_path / "cache")
    ingest_archive(repo, str(write_course(tmp_path / "a.mbz", _posts(0))))
    before = set(_codecs(tmp_path / "repo"))
    ingest_archive(repo, str(write_course(tmp_path / "b.mbz", _posts(1))), course="x")
    assert CODEC_ZSTD_DICT not in before
    assert CODEC_ZSTD_DICT not in _codecs(tmp_path / "repo")


def test_an_archives_members_are_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_course: Callable[..., Path]
) -> None:
    """The course (and so the dictionary) is known before the first member is
    stored (snapshot/source.py reads moodle_backup.xml first): the members
    are streamed once, every new block compressed against the dictionary."""
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    repo = Repository.open(backend, cache_dir=tmp_path / "cache")
    ingest_archive(repo, str(write_course(tmp_path / "a.mbz", _posts(0))))
    opened: list[str] = []

    def counting(path: str) -> Any:
        opened.append(path)
        return archive.iter_members(path)

    monkeypatch.setattr(source, "iter_members", counting)
    before = len(_codecs(tmp_path / "repo"))
    ingest_archive(repo, str(write_course(tmp_path / "b.mbz", _posts(1), 1700086400)))
    assert len(opened) == 1
    assert CODEC_ZSTD_DICT in _codecs(tmp_path / "repo")[before:]


def test_a_big_night_is_stored_with_its_dictionary(
    tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    """No night is too big for its dictionary: nothing waits for the course to
    be known, so blocks are sealed as they fill, each against it where that
    compresses better than plain zstd (a session
    used to hold a night's objects in one block, up to 8 MiB, and store a
    bigger night without)."""
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, block_size=16384, pack_size=64 * 1024)
    repo = Repository.open(backend, cache_dir=tmp_path / "cache")
    ingest_archive(repo, str(write_course(tmp_path / "a.mbz", _posts(0))))
    before = len(_codecs(tmp_path / "repo"))
    path = write_course(tmp_path / "b.mbz", _posts(1), 1700086400)
    snap = ingest_archive(repo, str(path)).snapshot
    night = _codecs(tmp_path / "repo")[before:]
    assert night.count(CODEC_ZSTD_DICT) >= 3  # several blocks, each sealed as it filled
    out = tmp_path / "out.mbz"
    export_snapshot(repo, snap, str(out))
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(path.read_bytes())
    assert check_repository(repo, read_data=True).ok
