"""The guide's nightly script, as printed there, run over several nights:
it stores what is new, moves past a refused archive and says so in its exit
code, and takes again, without duplicates, what a failed night left."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import CORPUS

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"
DAY = 86400


def nightly_script() -> str:
    match = re.search(r"```bash\n(#!/bin/bash\n.*?)```", GUIDE.read_text(), re.S)
    assert match, "docs/guide.md has no nightly script"
    return match.group(1)


def damaged_zip(path: Path) -> None:
    """100 bytes cut out of a member's data (issue 20's case)."""
    data = next(c for c in CORPUS if "moodle_28_quiz" in c.name).read_bytes()
    path.write_bytes(data[:2800] + data[2900:])


@pytest.mark.skipif(shutil.which("bash") is None, reason="the script is bash")
def test_the_guides_nightly_script(tmp_path: Path, cache: Path) -> None:
    repo, backups = tmp_path / "repo", tmp_path / "backups"
    backups.mkdir()
    script = tmp_path / "nightly"
    text = nightly_script().replace("/srv/coursevault", str(repo))
    script.write_text(text.replace("/var/moodledata/backups", str(backups)))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    courses = iter(c for c in CORPUS if c.read_bytes()[:2] == b"\x1f\x8b")
    clock = [1_700_000_000]

    def backup(name: str, make: Callable[[Path], None] | None = None) -> None:
        """Moodle writes an archive (each a day later than the one before)."""
        path = backups / name
        if make is None:
            shutil.copy(next(courses), path)
        else:
            make(path)
        clock[0] += DAY
        os.utime(path, (clock[0], clock[0]))

    def night() -> tuple[int, str]:
        done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
        return done.returncode, done.stderr

    def snapshots() -> list[str]:
        out = subprocess.run(
            ["coursevault", "snapshots", "-r", str(repo), "--json"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return sorted(s["source"]["file"] for s in json.loads(out))

    subprocess.run(["coursevault", "init", str(repo)], env=env, check=True, capture_output=True)

    backup("night-1.mbz")
    assert night() == (0, "")
    assert snapshots() == ["night-1.mbz"]

    backup("night-2a.mbz", damaged_zip)
    backup("night-2b.mbz")
    code, err = night()
    assert code == 2  # cron learns something was refused
    assert err.startswith("coursevault: error: ./night-2a.mbz: gradebook.xml: corrupt zip")
    assert snapshots() == ["night-1.mbz", "night-2b.mbz"]  # the one after it is stored

    backup("night-3.mbz")
    assert night() == (0, "")  # past the refused archive, for good
    assert snapshots() == ["night-1.mbz", "night-2b.mbz", "night-3.mbz"]

    # a night the repository is away: nothing is marked done ...
    backup("night-4.mbz")
    repo.rename(tmp_path / "away")
    code, err = night()
    assert code == 10 and "no repository" in err
    # ... so the next night takes it, and nothing twice
    (tmp_path / "away").rename(repo)
    backup("night-5.mbz")
    assert night() == (0, "")
    assert snapshots() == [f"night-{n}.mbz" for n in ("1", "2b", "3", "4", "5")]
