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


def test_sigterm_mid_ingest_cleans_up_and_exits_143(tmp_path: Path) -> None:
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
    while not any(scratch.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the write session has made its temporary files
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err.decode()
    assert err.decode().strip().splitlines()[-1] == "coursevault: terminated"
    assert list(scratch.iterdir()) == []  # SIGTERM's default left a pending index of MBs
    assert not list((repo / "locks").glob("*")), list((repo / "locks").iterdir())
    assert main(["-r", str(repo), "check", "--json"]) == 0
    assert main(["-r", str(repo), "ingest", "--json", str(BIG)]) == 0  # no lock in the way
