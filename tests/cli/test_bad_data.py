"""Bad stored data reaches the user as one line and the hierarchy's exit code
(errors.py), never as "internal error": a stored node of the wrong kind or
malformed is corruption (exit 1)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest
from helpers import CORPUS, MINIMAL_BACKUP, write_tgz

from coursevault.errors import EXIT_FAILURE, CorruptionError
from coursevault.snapshot import ingest
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.backend import LocalBackend
from coursevault.store.ids import ObjectType, object_id
from coursevault.store.repository import Repository
from coursevault.store.treecodec import decode_tree, encode_tree
from coursevault.tree import elements, xmlmember

COURSE = b'<?xml version="1.0"?>\n<course id="1">\n  <fullname>A</fullname>\n</course>'


def one_error_line(r: Any, code: int) -> str:
    assert r.code == code, (r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coursevault: error:"), r.err
    return str(lines[0])


@pytest.fixture
def damaged(cv: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A repository whose latest snapshot's course.xml names a record where
    its document should be (a wrong reference a buggy writer could store)."""
    repo = tmp_path / "repo"
    assert cv("init", repo).code == 0
    archive = tmp_path / "a.mbz"
    write_tgz(archive, [("moodle_backup.xml", MINIMAL_BACKUP), ("course.xml", COURSE)])
    with Repository.open(LocalBackend(repo), cache_dir=tmp_path / "cache") as r:
        first = ingest_archive(r, str(archive))
        key = blake3.blake3(xmlmember.CUT_KEY + COURSE).digest()
        found = r.stored_inputs.get(key)
        assert found is not None
        root_record = decode_tree(r.get(found[0])[1])[0][0]
        r.stored_inputs.put(first.snapshot, [(key, root_record, found[1])])
        with monkeypatch.context() as m:  # the checks that would refuse it
            m.setattr(xmlmember, "row_holds", lambda *_a: True)
            m.setattr(ingest, "check_stored_length", lambda *_a: None)
            ingest_archive(r, str(archive), when="2030-01-01T00:00")
    return str(repo)


@pytest.mark.parametrize("command", ["cat", "ls"])
def test_a_stored_node_of_the_wrong_kind_is_corruption(
    cv: Callable[..., Any], damaged: str, command: str
) -> None:
    where = "course.xml:/course" if command == "cat" else "course.xml"
    r = cv(command, "-r", damaged, "abc-7@latest", where)
    assert "not a document node" in one_error_line(r, EXIT_FAILURE)


def test_a_malformed_stored_fragment_is_corruption() -> None:
    """A record whose fragment libxml2 refuses (lxml's error is no
    CoursevaultError of its own)."""
    body = b"X" + b"<course><broken></course>"
    record = encode_tree([], body)
    store = {object_id(ObjectType.TREE, record): (ObjectType.TREE, record)}
    oid = next(iter(store))
    with pytest.raises(CorruptionError, match="its node is malformed"):
        elements.load_record(store.__getitem__, oid)


def test_a_tree_that_does_not_decode_is_corruption() -> None:
    junk = b"\xff" * 12
    oid = object_id(ObjectType.TREE, junk)
    with pytest.raises(CorruptionError):
        elements.load_record({oid: (ObjectType.TREE, junk)}.__getitem__, oid)


def test_a_full_temporary_folder_is_one_line_and_no_snapshot(
    cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The open pack past its spill size is written to TMPDIR (store/spool.py):
    a full disk there is named, not an internal error, and leaves no snapshot."""
    import errno

    from coursevault.store import spool

    big = max(CORPUS, key=lambda p: p.stat().st_size)  # 6 MB: its pack spills
    repo = tmp_path / "repo"
    assert cv("init", repo).code == 0

    def full(fd: int, data: object, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool.os, "pwrite", full)
    r = cv("-r", repo, "ingest", big, "--course", "big")
    assert r.code == 1, (r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "TMPDIR" in lines[0] and "No space left" in lines[0], r.err
    monkeypatch.undo()
    assert cv("-r", repo, "snapshots", "--json").out.strip() in ("[]", "")


def test_a_full_temporary_folder_at_a_spool_s_close_is_still_one_line(
    cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spool of records (store/spool.py ScratchFile) flushes its buffer
    as it closes: on a full TMPDIR that flush failed again while the
    writer unwound from the first failure, and its bare OSError replaced
    the one-line message ("internal error: OSError: No space left")."""
    import errno
    import tempfile

    from coursevault.store import spool

    big = max(CORPUS, key=lambda p: p.stat().st_size)
    repo = tmp_path / "repo"
    assert cv("init", repo).code == 0

    def full(fd: int, data: object, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    class FullOnClose:
        def __init__(self, file: object) -> None:
            self._file = file

        def __getattr__(self, name: str) -> object:
            return getattr(self._file, name)

        def close(self) -> None:
            self._file.close()  # type: ignore[attr-defined]
            raise OSError(errno.ENOSPC, "No space left on device")

    made = tempfile.TemporaryFile
    monkeypatch.setattr(spool.os, "pwrite", full)
    monkeypatch.setattr(spool.tempfile, "TemporaryFile",
                        lambda *a, **k: FullOnClose(made(*a, **k)))
    r = cv("-r", repo, "ingest", big, "--course", "big")
    assert r.code == 1, (r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "TMPDIR" in lines[0] and "No space left" in lines[0], r.err


def test_a_full_temporary_folder_under_an_xml_member_s_spool_is_one_line(
    cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest spools each XML member (in memory up to a size, then in
    TMPDIR) while it cuts it: a full TMPDIR there was "internal error:
    OSError: No space left on device"."""
    import errno
    import tempfile

    from coursevault.snapshot import ingest

    repo = tmp_path / "repo"
    assert cv("init", repo).code == 0
    made = tempfile.TemporaryFile

    class Full:
        def __init__(self, file: object) -> None:
            self._file = file

        def __getattr__(self, name: str) -> object:
            return getattr(self._file, name)

        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def temporary_file(*args: object, **kwargs: object) -> object:
        file = made(*args, **kwargs)  # type: ignore[call-overload]
        # a spool's rollover names no prefix; the store's scratch files do
        return Full(file) if kwargs.get("prefix") is None else file

    monkeypatch.setattr(ingest, "SPOOL_IN_MEMORY", 1)
    monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)
    r = cv("-r", repo, "ingest", CORPUS[0], "--course", "c")
    assert r.code == 1, (r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "TMPDIR" in lines[0] and "No space left" in lines[0], r.err
    monkeypatch.undo()
    assert cv("-r", repo, "snapshots", "--json").out.strip() in ("[]", "")


def test_a_catalog_that_fails_after_commit_is_a_warning_not_a_failure(
    cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ingest remembers of how it cut the XML goes to the catalog once
    the snapshot is committed; that write failing (a row past SQLite's
    limit) made the command exit 1 for a stored snapshot, and a nightly
    script stored it again."""
    from coursevault.errors import CatalogError
    from coursevault.store.stored_inputs import StoredInputs

    def fails(self: object, snapshot: str, rows: object) -> None:
        raise CatalogError("catalog write failed: string or blob too big")

    repo = tmp_path / "repo"
    assert cv("init", repo).code == 0
    monkeypatch.setattr(StoredInputs, "put", fails)
    big = max(CORPUS, key=lambda p: p.stat().st_size)
    r = cv("-r", repo, "ingest", big, "--course", "c")
    assert r.code == 0, r.err
    assert "is stored, but the catalog did not keep" in r.err, r.err
    monkeypatch.undo()
    assert len(json.loads(cv("-r", repo, "snapshots", "--json").out)) == 1
    assert cv("-r", repo, "check").code == 0


def test_control_characters_in_names_are_printed_escaped(
    cv: Callable[..., Any], tmp_path: Path
) -> None:
    """An archive's file name, a message naming a member or a course: their
    control characters reach the terminal escaped, so a name holding ESC
    cannot retitle the window, clear the screen or write the clipboard of
    whoever lists the snapshot (JSON escapes them itself).  A member so
    named is refused at ingest, and its refusal names it escaped."""
    repo = tmp_path / "repo"
    assert cv("init", repo).code == 0
    archive = tmp_path / "night\x1b[2J.mbz"
    evil = "course/a\x1b]52;c;ZXZpbA==\x07b.txt"
    write_tgz(archive, [("moodle_backup.xml", MINIMAL_BACKUP), ("course.xml", COURSE),
                        (evil, b"x")])
    r = cv("ingest", "-r", repo, archive)  # such a member is refused, and named escaped
    assert r.code == 2 and "\x1b" not in r.err and "\x07" not in r.err, r.err
    assert "course/a\\x1b]52;c;ZXZpbA==\\x07b.txt" in r.err, r.err
    write_tgz(archive, [("moodle_backup.xml", MINIMAL_BACKUP), ("course.xml", COURSE)])
    r = cv("ingest", "-r", repo, archive)
    assert r.code == 0 and "night\\x1b[2J.mbz" not in r.out  # ingest names no archive
    for argv in (["snapshots", "-r", repo], ["ls", "-r", repo, json.loads(
            cv("snapshots", "-r", repo, "--json").out)[0]["id"]]):
        r = cv(*argv)
        assert r.code == 0 and "\x1b" not in r.out and "\x07" not in r.out, argv
    assert "night\\x1b[2J.mbz" in cv("snapshots", "-r", repo).out
    r = cv("ls", "-r", repo, "nonexistent-course\x1b[2J")
    assert "\x1b" not in r.err and "\\x1b[2J" in r.err
    assert json.loads(cv("snapshots", "-r", repo, "--json").out)[0]["source"]["file"] == (
        archive.name)
