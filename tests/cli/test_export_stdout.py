"""``export -o -``: the archive on standard output, for a pipe to ssh or a
Moodle host's restore, as ``cat`` gives a member."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from helpers import CORPUS

SMALL = min(CORPUS, key=lambda p: p.stat().st_size)
ZIPPED = min((p for p in CORPUS if p.read_bytes()[:2] == b"PK"), key=lambda p: p.stat().st_size)


def coursevault(*argv: str, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "coursevault.cli.app", *argv], stdout=stdout,
                          stderr=subprocess.PIPE, timeout=120, check=False)


@pytest.fixture
def repo(cv, tmp_path: Path) -> str:
    path = str(tmp_path / "repo")
    assert cv("init", path).code == 0
    return path


def ingested(cv, repo: str, archive: Path) -> str:
    r = cv("ingest", "-r", repo, "--json", str(archive))
    assert r.code == 0, r.err
    return str(json.loads(r.out)["snapshot"])


def test_a_tgz_on_a_pipe_is_the_file_export_byte_for_byte(cv, repo: str, tmp_path: Path) -> None:
    snap = ingested(cv, repo, SMALL)
    assert cv("export", "-r", repo, snap, "-o", str(tmp_path / "a.mbz")).code == 0
    done = coursevault("export", "-r", repo, snap, "-o", "-")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == (tmp_path / "a.mbz").read_bytes()
    assert b"wrote standard output (tgz," in done.stderr  # the summary kept out of the archive
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        assert "./moodle_backup.xml" in tar.getnames() or "moodle_backup.xml" in tar.getnames()


def test_a_zip_on_a_pipe_that_cannot_seek_holds_the_same_members(cv, repo: str,
                                                                 tmp_path: Path) -> None:
    """A pipe cannot seek: zipfile writes each member's sizes after it (data
    descriptors), so the bytes differ from the file's but not the members."""
    snap = ingested(cv, repo, ZIPPED)
    assert cv("export", "-r", repo, snap, "-o", str(tmp_path / "a.mbz")).code == 0
    done = coursevault("export", "-r", repo, snap, "-o", "-")
    assert done.returncode == 0, done.stderr.decode()
    with zipfile.ZipFile(tmp_path / "a.mbz") as want, \
            zipfile.ZipFile(io.BytesIO(done.stdout)) as got:
        assert got.testzip() is None
        assert got.namelist() == want.namelist()
        for name in want.namelist():
            assert got.read(name) == want.read(name), name
        assert any(zi.flag_bits & 0x08 for zi in got.infolist())  # it was streamed


def test_standard_output_redirected_to_a_file_gets_the_archive(cv, repo: str,
                                                               tmp_path: Path) -> None:
    snap = ingested(cv, repo, ZIPPED)
    assert cv("export", "-r", repo, snap, "-o", str(tmp_path / "a.mbz")).code == 0
    with open(tmp_path / "b.mbz", "wb") as f:
        done = coursevault("export", "-r", repo, snap, "-o", "-", stdout=f.fileno())
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "b.mbz").read_bytes() == (tmp_path / "a.mbz").read_bytes()


def test_a_terminal_or_json_is_refused_before_anything_is_written(cv, repo: str) -> None:
    snap = ingested(cv, repo, SMALL)
    r = cv("export", "-r", repo, snap, "-o", "-", "--json")
    assert r.code == 2 and "--json prints to standard output" in r.err
    main, child = pty.openpty()
    try:
        done = coursevault("export", "-r", repo, snap, "-o", "-", stdout=child)
        os.set_blocking(main, False)
        try:
            shown = os.read(main, 1 << 16)
        except BlockingIOError:
            shown = b""
    finally:
        os.close(main)
        os.close(child)
    assert done.returncode == 2, done.stderr.decode()
    assert b"refusing to write an archive to a terminal" in done.stderr
    assert shown == b""


def test_a_closed_standard_output_or_an_empty_name_is_one_line(cv, repo: str) -> None:
    """``export -o - >&-`` was 'internal error: AttributeError' (Python's
    sys.stdout is None then); ``-o ''`` said the empty path was a folder."""
    snap = ingested(cv, repo, SMALL)
    done = subprocess.run([sys.executable, "-m", "coursevault.cli.app", "-r", repo, "export",
                           snap, "-o", "-"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=120, check=False, preexec_fn=lambda: os.close(1))
    assert done.returncode == 2, done.stderr.decode()
    assert b"standard output is closed" in done.stderr
    r = cv("export", "-r", repo, snap, "-o", "")
    assert r.code == 2 and "-o is empty" in r.err, r.err
