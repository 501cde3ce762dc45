"""``coursevault ingest`` and ``export`` from the command line: caches, levels, errors."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import CORPUS, read_members


def test_export_level_changes_the_container_not_the_members(cv, tmp_path: Path) -> None:
    source = next(p for p in CORPUS if "moodle2cc" in p.name)
    repo = str(tmp_path / "repo")
    assert cv("init", repo).code == 0
    assert cv("ingest", "-r", repo, str(source)).code == 0
    sizes = {}
    for level in ("1", "9"):
        out = tmp_path / f"l{level}.mbz"
        res = cv("export", "-r", repo, "--level", level, "-o", str(out), first_snapshot(cv, repo))
        assert res.code == 0, res.err
        assert read_members(out) == read_members(source)
        sizes[level] = out.stat().st_size
    assert sizes["1"] > sizes["9"]

    bad = cv("export", "-r", repo, "--level", "12", "-o", str(tmp_path / "x.mbz"), "x")
    assert bad.code == 2
    assert "level 12" in bad.err and len(bad.err.strip().splitlines()) == 1


def first_snapshot(cv, repo: str) -> str:
    return str(json.loads(cv("snapshots", "-r", repo, "--json").out)[0]["id"])


def test_ingest_with_a_new_cache_finds_the_parent_written_through_another(
    cv, tmp_path: Path
) -> None:
    """ingest opens without syncing (its write session syncs under the lock);
    a catalog that has never seen the repository must still find the parent."""
    source = next(p for p in CORPUS if "moodle2cc" in p.name)
    repo = str(tmp_path / "repo")
    assert cv("init", repo).code == 0
    assert cv("ingest", "-r", repo, "--cache-dir", str(tmp_path / "a"), str(source)).code == 0
    res = cv(
        "ingest", "-r", repo, "--cache-dir", str(tmp_path / "b"), "--json",
        "--time", "2030-01-01T00:00", str(source),
    )  # fmt: skip
    assert res.code == 0, res.err
    snaps = json.loads(cv("snapshots", "-r", repo, "--json").out)
    assert len(snaps) == 2
    assert snaps[1]["parents"] == [snaps[0]["id"]]
    assert json.loads(res.out)["new_objects"] == 0
