"""``check`` follows a snapshot's trees below those a dictionary kept.

After a forget and prune, the upper trees of forgotten nights stay as
dictionary content, without what they name.  A night that stores the same
bytes again names those trees, and writes their children anew.  check used
one mark for "a snapshot's walk reached it" and "a dictionary reads it", so
a walk that met such a tree after the dictionary's check stopped there: the
new night's pack deleted, check said the repository was clean, and export
failed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import CORPUS_DIR

from coursevault import api
from coursevault.history.retention import Policy

GEN = Path(__file__).resolve().parents[2] / "benchmarks" / "gen_course.py"
COURSE = "mod_quiz_tests_fixtures_moodle_311_quiz.mbz"


def _nights(folder: Path, count: int) -> list[Path]:
    subprocess.run(
        [sys.executable, str(GEN), "nights", "--out", str(folder), "--nights", str(count),
         "--from", str(CORPUS_DIR / COURSE)],
        check=True, stdout=subprocess.DEVNULL,
    )
    return [folder / f"night-{n:02d}.mbz" for n in range(1, count + 1)]


def _files(root: Path) -> set[Path]:
    return {p for sub in ("packs", "index") for p in (root / sub).rglob("*") if p.is_file()}


def test_check_finds_what_is_missing_below_a_tree_a_dictionary_kept(tmp_path: Path) -> None:
    nights = _nights(tmp_path / "nights", 4)
    location = str(tmp_path / "repo")
    api.init_repository(location)
    repo = api.open_repository(location, cache_dir=str(tmp_path / "cache"))
    try:
        for n, archive in enumerate(nights, 1):
            api.ingest(repo, str(archive), course="K", when=f"2026-03-0{n}T02:00:00+00:00")
        api.forget(repo, Policy(last=1), course="K")
        api.prune(repo)
        before = _files(tmp_path / "repo")
        # night 1's bytes again: its upper trees are still stored, as the
        # dictionaries' content; what they name is written anew
        api.ingest(repo, str(nights[0]), course="K", when="2026-03-05T02:00:00+00:00")
        assert api.check(repo, read_data=True).ok
        new = _files(tmp_path / "repo") - before
        assert any(p.parent.parent.name == "packs" for p in new)
        for path in new:
            path.unlink()
        api.repair_journal(repo)
    finally:
        repo.close()
    repo = api.open_repository(location, cache_dir=str(tmp_path / "cache2"))
    try:
        for read_data in (False, True):
            report = api.check(repo, read_data=read_data)
            assert not report.ok
            assert any("missing" in p.message for p in report.problems)
    finally:
        repo.close()
