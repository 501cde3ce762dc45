"""The common options (-r/--repo, --cache-dir, --catalog, --json) before or after the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def repo(cv, tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    assert cv("init", path).code == 0
    return path


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_repo_before_or_after_the_command(cv, repo: Path, before: bool) -> None:
    argv = ["-r", repo, "stats", "--json"] if before else ["stats", "-r", repo, "--json"]
    r = cv(*argv)
    assert r.code == 0, r.err
    assert json.loads(r.out)["location"] == str(repo)
    long = ["--repo", repo, "snapshots"] if before else ["snapshots", "--repo", repo]
    r = cv(*long)
    assert r.code == 0, r.err


def test_every_common_option_before_the_command(cv, repo: Path, tmp_path: Path) -> None:
    cache, db = tmp_path / "elsewhere", tmp_path / "catalog.sqlite"
    r = cv("-r", repo, "--cache-dir", cache, "--json", "stats")
    assert r.code == 0, r.err
    rid = json.loads(r.out)["repository"]  # --json applied: the output is JSON
    assert (cache / rid / "catalog.sqlite").is_file()
    r = cv("--repo", repo, "--catalog", f"sqlite:///{db}", "--json", "snapshots")
    assert r.code == 0, r.err
    assert json.loads(r.out) == [] and db.is_file()


def test_before_a_subcommand_of_a_group_and_init(cv, tmp_path: Path) -> None:
    repo = tmp_path / "made"
    assert cv("-r", repo, "init").code == 0
    r = cv("-r", repo, "--json", "index", "rebuild")
    assert r.code == 0, r.err
    assert json.loads(r.out)["snapshots"] == 0


def test_the_commands_own_option_wins_then_the_one_before_then_the_environment(
    cv, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = tmp_path / "nowhere"
    r = cv("-r", nowhere, "stats", "-r", repo, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["location"] == str(repo)
    monkeypatch.setenv("COURSEVAULT_REPO", str(nowhere))
    r = cv("-r", repo, "stats", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["location"] == str(repo)
    assert cv("stats").code == 10  # the environment alone still counts


def test_an_option_before_the_command_still_needs_its_value(cv) -> None:
    r = cv("stats", "-r")
    assert r.code == 2 and r.err.startswith("coursevault: error:")
    r = cv("-r")
    assert r.code == 2 and r.err.startswith("coursevault: error:")
