"""The file store side of a restore (moodledb/filedir.py): a dry run refuses
what the restore itself would refuse."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from coursevault.errors import BadInputError
from coursevault.moodledb.filedir import Staging


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_content_that_does_not_match_its_sha1_is_refused(tmp_path: Path, dry_run: bool) -> None:
    """A dry run staged nothing and checked nothing: it said yes to a backup
    whose restore then failed on the content."""
    (tmp_path / "filedir").mkdir()
    staging = Staging(str(tmp_path), dry_run=dry_run)
    good = b"a file's content"
    sha1 = hashlib.sha1(good).hexdigest()
    staging.stage(sha1, lambda f: f.write(good), "files/good")
    with pytest.raises(BadInputError, match="files/bad: content does not match its sha1"):
        staging.stage("0" * 40, lambda f: f.write(good), "files/bad")
    assert list(staging.staged) == [sha1]
    staging.discard()
    assert not list((tmp_path / "filedir").iterdir())


def _killed_restore(dataroot: Path, owner: dict[str, object] | str) -> tuple[Path, Path]:
    """A staging folder whose journal names one content moved into filedir."""
    import json

    from coursevault.moodledb.filedir import (
        JOURNAL,
        OWNER,
        OWNER_RECORD,
        STAGING_PREFIX,
        content_path,
    )

    folder = dataroot / "temp" / f"{STAGING_PREFIX}0123456789ab"
    folder.mkdir(parents=True)
    if isinstance(owner, str):  # an earlier version's folder: a bare pid
        (folder / OWNER).write_text(owner)
    else:
        (folder / OWNER_RECORD).write_text(json.dumps(owner))
        (folder / OWNER).write_text(str(owner["pid"]))
    sha1 = "ab" * 20
    (folder / JOURNAL).write_text(sha1 + "\n")
    content = Path(content_path(str(dataroot), sha1))
    content.parent.mkdir(parents=True)
    content.write_bytes(b"x")
    return folder, content


DEAD_PID = 2**22 + 12345  # above Linux's pid_max: no process has it


@pytest.mark.parametrize(
    ("who", "kept"),
    [
        ({"host": "another-host"}, True),  # its process cannot be looked at from here
        ({"pidns": "pid:[1]"}, True),  # another PID namespace on this host (a container)
        ({"boot": "another-boot"}, False),  # this host rebooted since: it is dead
        ({}, False),  # this host, this namespace: its pid is not running
    ],
)
def test_recover_leaves_a_folder_whose_owner_it_cannot_see(
    tmp_path: Path, who: dict[str, object], kept: bool
) -> None:
    """Two restores each PID 1 of their own namespace on one dataroot (or two
    hosts on NFS): the second took the first's live folder for a killed
    restore's and removed the contents the first was about to commit."""
    from coursevault.moodledb.filedir import owner_record, recover

    (tmp_path / "filedir").mkdir()
    owner = {**owner_record(None), "pid": DEAD_PID, **who}
    folder, content = _killed_restore(tmp_path, owner)
    removed = recover(str(tmp_path), lambda _hashes: set())
    assert (removed, folder.exists(), content.exists()) == ((0, True, True) if kept else (1, False, False))


def test_recover_waits_for_a_dead_restore_s_database_session(tmp_path: Path) -> None:
    from coursevault.moodledb.filedir import owner_record, recover

    (tmp_path / "filedir").mkdir()
    folder, content = _killed_restore(tmp_path, {**owner_record("postgresql:77"), "pid": DEAD_PID})
    assert recover(str(tmp_path), lambda _h: set(), lambda s: s == "postgresql:77") == 0
    assert folder.exists() and content.exists()
    assert recover(str(tmp_path), lambda _h: set(), lambda _s: False) == 1
    assert not content.exists()


def test_recover_reads_an_owner_file_of_before_as_a_pid(tmp_path: Path) -> None:
    from coursevault.moodledb.filedir import recover

    (tmp_path / "filedir").mkdir()
    folder, content = _killed_restore(tmp_path, str(DEAD_PID))
    assert recover(str(tmp_path), lambda _h: set()) == 1 and not folder.exists()
    assert not content.exists()


def test_contents_move_into_filedir_across_file_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DATAROOT/temp on another file system than filedir (a local disk
    under an NFS dataroot): the rename failed with EXDEV and every restore
    bringing a new content with it (exit 13)."""
    import errno
    import os

    from coursevault.moodledb import filedir

    (tmp_path / "filedir").mkdir()
    staging = Staging(str(tmp_path))
    good = b"a file's content"
    sha1 = hashlib.sha1(good).hexdigest()
    staging.stage(sha1, lambda f: f.write(good), "files/good")
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        if f"{os.sep}temp{os.sep}" in str(src):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(filedir.os, "replace", replace)
    staging.publish()
    target = Path(filedir.content_path(str(tmp_path), sha1))
    assert target.read_bytes() == good
    assert [p.name for p in target.parent.iterdir()] == [sha1]  # no .tmp left
    staging.discard()


def test_an_earlier_version_reads_the_owner_as_a_pid(tmp_path: Path) -> None:
    """The owner record went into 'pid' as JSON: an earlier version's
    recover() read no pid there, took a live restore's folder for a dead
    one's and removed the contents it had staged."""
    from coursevault.moodledb.filedir import OWNER

    (tmp_path / "filedir").mkdir()
    staging = Staging(str(tmp_path))
    good = b"a file's content"
    staging.stage(hashlib.sha1(good).hexdigest(), lambda f: f.write(good), "files/good")
    import os

    assert (Path(staging.folder) / OWNER).read_text() == str(os.getpid())
    staging.discard()


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_content_hash_that_is_a_path_is_refused_before_anything_is_written(
    tmp_path: Path, dry_run: bool
) -> None:
    """os.path.join restarts at an absolute part: a backup whose files.xml
    named "/some/file" as a contenthash had its member written there (then
    refused for its sha1, the file left behind)."""
    dataroot = tmp_path / "dataroot"
    (dataroot / "filedir").mkdir(parents=True)
    staging = Staging(str(dataroot), dry_run=dry_run)
    for name in (str(tmp_path / "written"), "../../../written", "AB" * 20):
        with pytest.raises(BadInputError, match="is not a content hash"):
            staging.stage(name, lambda f: f.write(b"x"), "files/x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataroot"]
    assert not staging.staged and not (dataroot / "temp").exists()


def test_recover_removes_nothing_but_contents(tmp_path: Path) -> None:
    """A journal line that is no content hash (a torn write, or a line put
    there by whoever can write DATAROOT/temp) was a path to remove: a file
    outside the file store was deleted by the next restore."""
    from coursevault.moodledb.filedir import JOURNAL, owner_record, recover

    dataroot = tmp_path / "dataroot"
    (dataroot / "filedir").mkdir(parents=True)
    folder, content = _killed_restore(dataroot, {**owner_record(None), "pid": DEAD_PID})
    outside = tmp_path / "precious"
    outside.write_text("not the file store's")
    (folder / JOURNAL).write_text(f"{outside}\n../../../precious\n{content.name}\n")
    assert recover(str(dataroot), lambda hashes: set()) == 1
    assert outside.read_text() == "not the file store's"
    assert not content.exists() and not folder.exists()


def test_a_dry_run_refuses_a_file_store_the_restore_cannot_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only dataroot (a read-only mount: access(2) says EROFS, even
    to root): the dry run said "would restore ... 69 new contents" and the
    restore then failed (exit 13) staging the first.  A dry run with no
    content to add still says yes: the restore writes nothing there."""
    import os

    from coursevault.errors import SiteError

    (tmp_path / "filedir").mkdir()
    writable = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: (
        not str(path).startswith(str(tmp_path)) and writable(path, mode, *a, **k)))
    staging = Staging(str(tmp_path), dry_run=True)
    good = b"a file's content"
    sha1 = hashlib.sha1(good).hexdigest()
    assert not staging.staged  # nothing to add: nothing checked
    with pytest.raises(SiteError, match=f"cannot stage files/good .*{tmp_path} is not writable"):
        staging.stage(sha1, lambda f: f.write(good), "files/good")
    monkeypatch.setattr(os, "access", writable)
    staging.stage(sha1, lambda f: f.write(good), "files/good")
    assert list(staging.staged) == [sha1]
