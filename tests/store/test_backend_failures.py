"""A backend's failure is never reported as corruption: "missing", "corrupt"
and "backend failing" stay apart from backend to user.  A pack truncated on
disk is damage (corrupt); a pack the storage cannot read right now (a
timeout, permission denied) is a BackendError, which a retry may cure."""

from __future__ import annotations

from pathlib import Path

import pytest

from coursevault.errors import BackendError, CorruptionError, ObjectMissingError
from coursevault.store.backend import LocalBackend
from coursevault.store.check import BACKEND, CORRUPT, MISSING, check_repository
from coursevault.store.ids import ObjectId, ObjectType
from coursevault.store.pack import Location, pack_key
from coursevault.store.repository import Repository
from coursevault.store.wrappers import BackendWrapper


class PacksFail(BackendWrapper):
    """Reading any pack fails as a network timeout would."""

    failing = False

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if self.failing and key.startswith("packs/"):
            raise BackendError(f"reading {key}: timed out")
        return super().read(key, offset, length)


def stored(tmp_path: Path) -> tuple[LocalBackend, ObjectId, Location]:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    with Repository.open(backend, cache_dir=tmp_path / "c0") as repo:
        with repo.writer() as w:
            blob = w.put(ObjectType.BLOB, b"file content " * 100)
            root = w.put_tree([blob], b"root")
            w.commit({"course": "c", "time": "", "epoch": 1.0, "root": root.hex(), "parents": []})
        return backend, root, repo.locate(root)


def reopened(backend: LocalBackend, tmp_path: Path) -> tuple[PacksFail, Repository]:
    failing = PacksFail(LocalBackend(backend.root))
    return failing, Repository.open(failing, cache_dir=tmp_path / "c1")


def test_a_failing_read_is_a_backend_error_not_corruption(tmp_path: Path) -> None:
    backend, root, loc = stored(tmp_path)
    failing, repo = reopened(backend, tmp_path)
    failing.failing = True
    with pytest.raises(BackendError) as caught:
        repo.get(root)
    assert not isinstance(caught.value, CorruptionError)
    with pytest.raises(BackendError) as caught:
        repo.block_dictionary(loc)
    assert not isinstance(caught.value, CorruptionError)
    failing.failing = False  # it was the storage: once it answers, all is well
    assert repo.get(root)[0] == ObjectType.TREE


def test_check_reports_a_failing_backend_as_such(tmp_path: Path) -> None:
    backend, _root, _loc = stored(tmp_path)
    failing, repo = reopened(backend, tmp_path)
    failing.failing = True
    report = check_repository(repo)
    assert report.errors
    assert {p.kind for p in report.errors} == {BACKEND}


def test_a_truncated_pack_is_corrupt(tmp_path: Path) -> None:
    backend, root, loc = stored(tmp_path)
    path = backend.root / pack_key(loc.pack)
    path.write_bytes(path.read_bytes()[: loc.block_offset + 3])
    _failing, repo = reopened(backend, tmp_path)
    with pytest.raises(CorruptionError):
        repo.get(root)
    with pytest.raises(CorruptionError):
        repo.block_dictionary(loc)
    assert {p.kind for p in check_repository(repo).errors} == {CORRUPT}


def test_a_missing_pack_is_missing(tmp_path: Path) -> None:
    backend, root, loc = stored(tmp_path)
    (backend.root / pack_key(loc.pack)).unlink()
    _failing, repo = reopened(backend, tmp_path)
    with pytest.raises(ObjectMissingError):
        repo.get(root)
    assert {p.kind for p in check_repository(repo).errors} == {MISSING}


def test_a_folder_the_user_cannot_read_is_skipped_in_the_search_for_temporaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository at the root of its own file system holds a lost+found
    only root reads; check and prune, run as a backup user, look for killed
    writers' temporary files everywhere and failed on it once that search
    streamed (os.walk skipped it)."""
    import os

    root = tmp_path / "r"
    (root / "snapshots" / "ab").mkdir(parents=True)
    (root / "lost+found").mkdir()
    (root / "snapshots" / "ab" / ".tmp-0123").write_bytes(b"x")
    real = os.scandir

    def scandir(path: str) -> object:
        if str(path).endswith("lost+found"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert list(LocalBackend(root).list_temporary()) == ["snapshots/ab/.tmp-0123"]

    def unreadable(path: str) -> object:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", unreadable)
    with pytest.raises(BackendError, match=f"cannot list {root}: Permission denied"):
        list(LocalBackend(root).list_temporary())  # the repository itself: an error
