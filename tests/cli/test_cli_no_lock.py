"""--no-lock: a repository this host may only read is checked, exported,
restored from and synced from; a command that writes refuses the option.

Every reader takes a shared lock, which is a file written into the
repository, so on a read-only mount (or with read-only credentials, or
under an object lock) export and check failed with ``cannot write
.../locks/...``.  The repository here is made read-only for real: a
read-only bind mount when the tests run as root (root writes through file
modes), the files' write bits taken away otherwise.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import CORPUS_DIR, read_members

COURSE = CORPUS_DIR / "mod_simplecertificate_tests_other_backup-test-course-for-moodle2.3-and-above.mbz"


def _mount_read_only(path: Path) -> Callable[[], None]:
    """``path`` read-only until the returned function is called."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p, mode in modes.items():
            p.chmod(mode & ~0o222)
        return lambda: [p.chmod(mode) for p, mode in modes.items()] and None
    steps = (["mount", "--bind", str(path), str(path)],
             ["mount", "-o", "remount,ro,bind", str(path)])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["umount", str(path)], capture_output=True)
            if os.environ.get("CI"):
                pytest.fail(f"cannot make a read-only mount as root: {done.stderr.strip()}")
            pytest.skip(f"cannot make a read-only mount: {done.stderr.strip()}")
    return lambda: subprocess.run(["umount", str(path)], check=True) and None


@pytest.fixture
def read_only_repo(tmp_path: Path, cv: Callable[..., Any]) -> Iterator[tuple[Path, str]]:
    """A repository holding one ingested course, read-only; and its snapshot."""
    repo = tmp_path / "repo"
    assert cv("-r", repo, "init").code == 0
    ingested = cv("-r", repo, "ingest", COURSE, "--json")
    assert ingested.code == 0, ingested.err
    snapshot = ingested.out.split('"snapshot": "')[1][:64]
    undo = _mount_read_only(repo)
    try:
        with pytest.raises(OSError):
            (repo / "probe").write_text("")
        yield repo, snapshot
    finally:
        undo()


def test_a_read_only_repository_is_read_with_no_lock(
    read_only_repo: tuple[Path, str], tmp_path: Path, cv: Callable[..., Any]
) -> None:
    repo, snapshot = read_only_repo
    out = tmp_path / "out.mbz"
    refused = cv("-r", repo, "export", snapshot[:12], "-o", out)
    assert refused.code == 1 and refused.err.count("\n") == 1, refused
    assert "locks/" in refused.err and "--no-lock reads it without a lock" in refused.err
    assert not out.exists()

    exported = cv("-r", repo, "export", snapshot[:12], "-o", out, "--no-lock")
    assert exported.code == 0, exported.err
    assert read_members(out) == read_members(COURSE)
    # before the command too, and check reads every byte
    checked = cv("--no-lock", "-r", repo, "check", "--read-data", "--json")
    assert checked.code == 0 and '"ok": true' in checked.out, checked
    assert not list((repo / "locks").iterdir())

    copy = tmp_path / "copy"
    assert cv("sync", repo, copy).code == 1
    synced = cv("sync", repo, copy, "--no-lock")
    assert synced.code == 0, synced.err
    assert cv("-r", copy, "check", "--read-data").code == 0
    again = tmp_path / "again.mbz"
    assert cv("-r", copy, "export", snapshot[:12], "-o", again).code == 0
    assert read_members(again) == read_members(COURSE)


@pytest.mark.parametrize(
    "argv",
    [
        ["ingest", str(COURSE)],
        ["forget", "--all", "--keep-last", "1"],
        ["prune"],
        ["index", "rebuild"],
        ["repair", "packs"],
        # refused before the database is opened (there is none), not per course
        ["backup", "--db", "sqlite:///no-such-site.db", "--dataroot", "no-data", "--all"],
    ],
    ids=["ingest", "forget", "prune", "index-rebuild", "repair", "backup"],
)
def test_a_command_that_writes_refuses_no_lock(
    argv: list[str], tmp_path: Path, cv: Callable[..., Any]
) -> None:
    repo = tmp_path / "repo"
    assert cv("-r", repo, "init").code == 0
    assert cv("-r", repo, "ingest", COURSE).code == 0
    before = sorted(p.relative_to(repo) for p in repo.rglob("*"))
    result = cv("--no-lock", "-r", repo, *argv)
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert "--no-lock is for commands that only read" in result.err
    assert f": {argv[0]} writes" in result.err or argv[0] in ("index", "repair"), result.err
    assert sorted(p.relative_to(repo) for p in repo.rglob("*")) == before
    assert cv("-r", repo, "runs", "--json").out.strip() == "[]"


def test_a_course_is_restored_into_moodle_from_a_read_only_repository(
    tmp_path: Path, cv: Callable[..., Any]
) -> None:
    """The restore host of a site whose backups it may only read."""
    site = ("--db", f"sqlite:///{tmp_path / 'site.db'}", "--dataroot", tmp_path / "data")
    assert cv("demo-site", *site).code == 0
    repo = tmp_path / "repo"
    assert cv("-r", repo, "init").code == 0
    backup = cv("-r", repo, "backup", *site, "--course", "2", "--json")
    assert backup.code == 0, backup.err
    snapshot = backup.out.split('"snapshot": "')[1][:12]
    undo = _mount_read_only(repo)
    try:
        refused = cv("-r", repo, "restore", snapshot, *site)
        assert refused.code == 1 and "--no-lock" in refused.err, refused
        restored = cv("-r", repo, "restore", snapshot, *site, "--no-lock", "--json")
        assert restored.code == 0, restored.err
        assert '"courseid": 3' in restored.out, restored.out
    finally:
        undo()


def test_locks_name_the_command_that_holds_them(
    tmp_path: Path, cv: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune that meets a database backup's lock is told 'backup', and an
    ingest's 'ingest' (both store through one write session)."""
    from coursevault.store.locks import Lock

    taken: list[str] = []
    acquire = Lock.acquire

    def noting(self: Lock, *args: Any, **kwargs: Any) -> Lock:
        taken.append(self.operation)
        return acquire(self, *args, **kwargs)

    monkeypatch.setattr(Lock, "acquire", noting)
    site = ("--db", f"sqlite:///{tmp_path / 'site.db'}", "--dataroot", tmp_path / "data")
    assert cv("demo-site", *site).code == 0
    repo = tmp_path / "repo"
    assert cv("-r", repo, "init").code == 0
    assert cv("-r", repo, "backup", *site, "--course", "2").code == 0
    assert cv("-r", repo, "ingest", COURSE).code == 0
    assert taken == ["backup", "ingest"]
