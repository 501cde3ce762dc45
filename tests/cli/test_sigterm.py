"""SIGTERM -- systemd stopping a backup's service, ``timeout``, a container
stopped -- unwinds the command as Ctrl-C does: exit 143, its temporary
files and its lock gone, the repository as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import CORPUS

from coursevault.cli.app import main

BIG = max(CORPUS, key=lambda p: p.stat().st_size)


def _has_pending_index(pid: int) -> bool:
    """Whether the process holds its write session's pending-index file open
    (named or not: /proc shows the name it was made with)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if "coursevault-pending-" in os.readlink(f"/proc/{pid}/fd/{fd}"):
                return True
        except OSError:
            continue
    return False


def _ingest_then(signum: int, tmp_path: Path) -> tuple[subprocess.Popen[bytes], bytes, Path]:
    """Start ``ingest`` of the biggest corpus archive with its own TMPDIR,
    send ``signum`` once its write session is under way."""
    repo, scratch = tmp_path / "repo", tmp_path / "tmp"
    scratch.mkdir()
    assert main(["init", str(repo)]) == 0
    env = {**os.environ, "TMPDIR": str(scratch), "COURSEVAULT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from coursevault.cli.app import run; run()",
         "-r", str(repo), "ingest", str(BIG)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not _has_pending_index(proc.pid) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)  # its write session is under way
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=60)
    return proc, err, scratch


def test_sigterm_mid_ingest_cleans_up_and_exits_143(tmp_path: Path) -> None:
    proc, err, scratch = _ingest_then(signal.SIGTERM, tmp_path)
    assert proc.returncode == 143, err.decode()
    assert err.decode().strip().splitlines()[-1] == "coursevault: terminated"
    assert list(scratch.iterdir()) == []
    repo = tmp_path / "repo"
    assert not list((repo / "locks").glob("*"))
    assert main(["-r", str(repo), "check"]) == 0
    assert main(["-r", str(repo), "ingest", str(BIG)]) == 0  # no lock in the way


def test_sigkill_mid_ingest_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The session's pending index was a named file in TMPDIR (6 MB at a
    big course's end) that a killed process left for good; it is unnamed
    from the start now, as the open pack's spill is."""
    proc, err, scratch = _ingest_then(signal.SIGKILL, tmp_path)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    assert list(scratch.iterdir()) == []


FINALIZER = """
import os, signal, sys, time
from coursevault.cli import app

signal.signal(signal.SIGTERM, app._terminate)


class Spool:
    def __del__(self):  # as SpooledTemporaryFile's, run by a collection
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs here, inside the finalizer


try:
    Spool()
    for _ in range(200):  # the command going on
        time.sleep(0.01)
except KeyboardInterrupt:
    sys.exit(143)
sys.exit(0)
"""


def test_a_sigterm_landing_in_a_finalizer_is_not_lost() -> None:
    """An exception raised in a ``__del__`` is dropped by Python: a SIGTERM
    that landed in one let the command run to its end and exit 0."""
    done = subprocess.run([sys.executable, "-c", FINALIZER], capture_output=True, timeout=60)
    assert done.returncode == 143, done.stderr.decode()
    assert b"Exception ignored" not in done.stderr
