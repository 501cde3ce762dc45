"""The README's main job on the embedded default: a demo site on SQLite,
backed up, one night of churn, backed up again (``--skip-unmodified`` skips
the course before the night, not after it); the diff between the two
snapshots is the night, and the newest one exports (issue 21, "Commands")."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .clirun import Result


def test_a_demo_course_night_by_night(cv: Callable[..., Result], tmp_path: Path) -> None:
    site = ("--db", f"sqlite:///{tmp_path}/site.db", "--dataroot", tmp_path / "moodledata")
    assert cv("demo-site", *site, "--size", "S").code == 0
    first = cv("backup", *site, "--course", "2")
    assert first.code == 0, first.err
    quiet = cv("backup", *site, "--all", "--skip-unmodified")
    assert quiet.code == 0 and "skipped" in quiet.out, quiet
    night = cv("demo-site", *site, "--churn", "--json")
    assert night.code == 0 and json.loads(night.out)["night"] == 1
    # the night happened now: its log lines are newer than the last snapshot
    second = cv("backup", *site, "--all", "--skip-unmodified")
    assert second.code == 0 and "skipped" not in second.out, second
    snapshots = json.loads(cv("snapshots", "--json").out)
    assert len(snapshots) == 2
    key = snapshots[0]["course"]
    stat = cv("diff", f"{key}@~1", f"{key}@latest", "--stat")
    assert stat.code == 0, stat.err
    changed = {line.split()[0] for line in stat.out.splitlines()[1:-1]}
    # the night's forum posts, submissions and grades, edited page and new file
    assert {"files.xml", "files"} <= changed
    assert {g.split("_")[0] for g in changed if g.startswith("activities/")} == {
        "activities/assign",
        "activities/forum",
        "activities/page",
        "activities/resource",
    }
    assert cv("export", f"{key}@latest", "-o", tmp_path / "night1.mbz").code == 0
    assert (tmp_path / "night1.mbz").stat().st_size > 9_000_000  # the files are in it


def test_shards_split_a_site_between_workers(cv: Callable[..., Result], tmp_path: Path) -> None:
    """``--shard K/N``: N workers, each backing up its own courses into one
    repository, together back up every course once."""
    site = ("--db", f"sqlite:///{tmp_path}/site.db", "--dataroot", tmp_path / "moodledata")
    made = cv("demo-site", *site, "--size", "S", "--courses", "3", "--json")
    assert made.code == 0, made.err
    courses = set(json.loads(made.out)["courses"])
    shards = []
    for k in (1, 2):
        result = cv("backup", *site, "--all", "--shard", f"{k}/2", "--json")
        assert result.code == 0, result.err
        shards.append({o["course_id"] for o in json.loads(result.out)})
    assert shards[0] | shards[1] == courses and not shards[0] & shards[1]
    assert all(shards) and {c % 2 for c in shards[0]} == {0}
    for bad in ("0/2", "3/2", "2", "a/b"):
        refused = cv("backup", *site, "--all", "--shard", bad)
        assert refused.code == 2 and "--shard" in refused.err, (bad, refused)
