"""The repository commands of the ``coursevault`` CLI: init, stats, check, index, unlock."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from helpers import MINIMAL_BACKUP, write_tgz

from coursevault.store.backend import LocalBackend
from coursevault.store.ids import ObjectType
from coursevault.store.pack import BLOCK_HEAD, ENTRY, iter_blocks
from coursevault.store.repository import Repository


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("coursevault: error:"), err
    return lines[0]


def fill(repo_dir: Path, cache: Path, n: int = 50) -> tuple[str, int]:
    """Commit one snapshot of ``n`` blobs through the API; return (snapshot id, objects)."""
    rng = random.Random(n)
    with Repository.open(LocalBackend(repo_dir), cache_dir=cache) as repo, repo.writer() as w:
        ids = [w.put(ObjectType.BLOB, rng.randbytes(64) * 20) for _ in range(n)]
        root = w.put_tree(ids, b"")
        snap = w.commit(
            {"course": "c1", "time": "t", "epoch": 1.0, "root": root.hex(), "parents": []}
        )
    assert snap
    return snap, n + 1


def the_pack(repo_dir: Path) -> Path:
    [pack] = [p for p in (repo_dir / "packs").rglob("*") if p.is_file()]
    return pack


# -- init ---------------------------------------------------------------------------------
def test_init_creates_a_repository(cv, tmp_path) -> None:
    r = cv("init", tmp_path / "repo")
    assert r.code == 0, r.err
    assert (tmp_path / "repo" / "config").is_file()
    config = json.loads((tmp_path / "repo" / "config").read_text())
    assert config["id"] in r.out and str(tmp_path / "repo") in r.out
    assert r.err == ""


def test_init_json_and_pack_size(cv, tmp_path) -> None:
    r = cv("init", "--repo", tmp_path / "repo", "--pack-size", "4", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["location"] == str(tmp_path / "repo")
    assert data["pack_size"] == 4 * 1024 * 1024 and data["version"] == 5


def test_init_dictionary_depth(cv, tmp_path) -> None:
    r = cv("init", tmp_path / "repo", "--dictionary-depth", "0", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["dictionary_depth"] == 0
    bad = cv("init", tmp_path / "other", "--dictionary-depth", "17")
    assert bad.code == 2
    assert "dictionary depth must be 0-16" in one_error_line(bad.err)
    assert not (tmp_path / "other").exists()


def test_init_twice_exits_2_with_one_line(cv, tmp_path) -> None:
    assert cv("init", tmp_path / "repo").code == 0
    before = (tmp_path / "repo" / "config").read_bytes()
    r = cv("init", tmp_path / "repo")
    assert r.code == 2
    assert "already exists" in one_error_line(r.err)
    assert (tmp_path / "repo" / "config").read_bytes() == before


def test_init_refuses_a_repository_whose_config_is_missing(cv, tmp_path) -> None:
    """A repository whose config was lost: init made a new one over it and
    its fresh journal deleted the old entries -- every snapshot gone from
    every listing (an adversarial pass).  Nor does it take any other folder
    that holds files."""
    repo, mbz = tmp_path / "repo", tmp_path / "t.mbz"
    write_tgz(mbz, [("moodle_backup.xml", MINIMAL_BACKUP)])
    assert cv("init", repo).code == 0
    assert cv("-r", repo, "ingest", mbz).code == 0
    (repo / "config").rename(tmp_path / "config.saved")
    journal = sorted(p.name for p in (repo / "journal").iterdir())
    r = cv("init", repo)
    assert r.code == 2 and "is not empty" in one_error_line(r.err), r
    assert sorted(p.name for p in (repo / "journal").iterdir()) == journal
    assert not (repo / "config").exists()
    (tmp_path / "config.saved").rename(repo / "config")
    assert len(json.loads(cv("-r", repo, "snapshots", "--json").out)) == 1
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("x")
    assert cv("init", other).code == 2 and not (other / "config").exists()
    r = cv("init", other / "todo.txt")  # was "cannot create .../config: File exists", exit 1
    assert r.code == 2 and "is a file" in one_error_line(r.err), r


def test_init_without_location_exits_2(cv) -> None:
    r = cv("init")
    assert r.code == 2
    one_error_line(r.err)


# -- stats --------------------------------------------------------------------------------
def test_stats_json(cv, tmp_path, cache) -> None:
    repo_dir = tmp_path / "repo"
    assert cv("init", repo_dir).code == 0
    r = cv("stats", "--repo", repo_dir, "--json")
    assert r.code == 0, r.err
    empty = json.loads(r.out)
    assert {"snapshots", "objects", "packs", "pack_bytes"} <= set(empty)
    assert [empty[k] for k in ("snapshots", "objects", "packs", "pack_bytes")] == [0, 0, 0, 0]

    _snap, n = fill(repo_dir, cache)
    data = json.loads(cv("stats", "-r", repo_dir, "--json").out)
    assert data["snapshots"] == 1 and data["objects"] == n and data["packs"] == 1
    assert data["pack_bytes"] == the_pack(repo_dir).stat().st_size
    # the catalog went to COURSEVAULT_CACHE, not to the home folder
    assert (cache / data["repository"] / "catalog.sqlite").is_file()


def test_stats_human(cv, tmp_path) -> None:
    assert cv("init", tmp_path / "repo").code == 0
    r = cv("stats", "--repo", tmp_path / "repo")
    assert r.code == 0
    assert any(line.split()[:2] == ["snapshots", "0"] for line in r.out.splitlines()), r.out


def test_stats_on_missing_repository_exits_10(cv, tmp_path) -> None:
    r = cv("stats", "--repo", tmp_path / "nowhere", "--json")
    assert r.code == 10
    assert "no repository" in one_error_line(r.err)
    assert r.out == ""


def test_stats_without_repository_option_exits_2(cv) -> None:
    r = cv("stats")
    assert r.code == 2
    assert "COURSEVAULT_REPO" in one_error_line(r.err)


def test_repo_environment_variable(cv, tmp_path, monkeypatch) -> None:
    repo_dir = tmp_path / "from-env"
    monkeypatch.setenv("COURSEVAULT_REPO", str(repo_dir))
    assert cv("init").code == 0
    assert (repo_dir / "config").is_file()
    r = cv("stats", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["location"] == str(repo_dir)
    # --repo wins over the environment
    other = tmp_path / "explicit"
    assert cv("init", "--repo", other).code == 0
    assert json.loads(cv("stats", "-r", other, "--json").out)["location"] == str(other)


def test_debug_shows_the_traceback(cv, tmp_path) -> None:
    r = cv("--debug", "stats", "--repo", tmp_path / "nowhere")
    assert r.code == 10
    assert "Traceback" in r.err and "NoRepositoryError" in r.err


# -- check --------------------------------------------------------------------------------
def test_check_good_repository(cv, tmp_path, cache) -> None:
    repo_dir = tmp_path / "repo"
    assert cv("init", repo_dir).code == 0
    _snap, n = fill(repo_dir, cache)
    r = cv("check", "--repo", repo_dir, "--read-data")
    assert r.code == 0, r.err
    assert "no errors" in r.out and r.err == ""
    r = cv("check", "--repo", repo_dir, "--json")
    assert r.code == 0
    data = json.loads(r.out)
    assert data["ok"] is True and data["errors"] == 0 and data["problems"] == []
    assert data["snapshots"] == 1 and data["objects"] == n and data["reachable_objects"] == n
    assert data["bytes_read"] == 0
    # check takes a shared lock and releases it
    assert list(LocalBackend(repo_dir).list("locks/")) == []


def test_check_corrupt_pack(cv, tmp_path, cache) -> None:
    repo_dir = tmp_path / "repo"
    assert cv("init", repo_dir).code == 0
    fill(repo_dir, cache)
    pack = corrupt_first_block(repo_dir)

    r = cv("check", "--repo", repo_dir, "--read-data")
    assert r.code == 1
    error_lines = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert error_lines and all(pack.name in ln for ln in error_lines), r.err
    assert "Traceback" not in r.err
    assert "errors" in r.out and "no errors" not in r.out

    r = cv("check", "--repo", repo_dir, "--read-data", "--json")
    assert r.code == 1
    report = json.loads(r.out)
    assert report["ok"] is False and report["errors"] >= 1
    assert report["bytes_read"] == pack.stat().st_size
    assert any(pack.name in p["message"] for p in report["problems"] if p["severity"] == "error")


def test_check_missing_index_reports_snapshot(cv, tmp_path, cache) -> None:
    repo_dir = tmp_path / "repo"
    assert cv("init", repo_dir).code == 0
    snap, _n = fill(repo_dir, cache)
    for f in (repo_dir / "index").iterdir():
        f.unlink()
    r = cv("check", "--repo", repo_dir, "--json")
    assert r.code == 1
    data = json.loads(r.out)
    assert data["ok"] is False
    assert any(snap in p["message"] for p in data["problems"] if p["severity"] == "error")
    assert data["warnings"] == 1  # the pack no index names


def corrupt_first_block(repo_dir: Path) -> Path:
    pack = the_pack(repo_dir)
    data = bytearray(pack.read_bytes())
    boff, _blen = next(iter(iter_blocks(bytes(data))))
    n = BLOCK_HEAD.unpack_from(data, boff)[4]
    data[boff + BLOCK_HEAD.size + n * ENTRY.size + 40] ^= 0xFF  # inside the block payload
    pack.write_bytes(bytes(data))
    return pack


@pytest.mark.parametrize("damage", ["corrupt-pack", "missing-index"])
def test_check_exits_1_on_errors(cv, tmp_path, cache, damage) -> None:
    """Regression: main() ignored click's return value, so a failed check exited 0."""
    repo_dir = tmp_path / "repo"
    assert cv("init", repo_dir).code == 0
    fill(repo_dir, cache)
    if damage == "corrupt-pack":
        corrupt_first_block(repo_dir)
    else:
        for f in (repo_dir / "index").iterdir():
            f.unlink()
    r = cv("check", "--repo", repo_dir, "--read-data")
    assert "error:" in r.err
    assert r.code == 1


def test_check_on_missing_repository(cv, tmp_path) -> None:
    r = cv("check", "--repo", tmp_path / "nowhere")
    assert r.code == 10
    one_error_line(r.err)


# -- index rebuild ------------------------------------------------------------------------
def test_index_rebuild_json(cv, tmp_path, cache) -> None:
    repo_dir = tmp_path / "repo"
    assert cv("init", repo_dir).code == 0
    _snap, n = fill(repo_dir, cache)
    repo_id = json.loads((repo_dir / "config").read_text())["id"]
    for f in (cache / repo_id).iterdir():  # lose the catalog entirely
        f.unlink()
    r = cv("index", "rebuild", "--repo", repo_dir, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out) == {
        "index_files": 1,
        "objects": n,
        "snapshots": 1,
        "damaged_index_files": [],
    }
    r = cv("index", "rebuild", "--repo", repo_dir)
    assert r.code == 0 and f"{n} objects" in r.out
    assert json.loads(cv("stats", "-r", repo_dir, "--json").out)["objects"] == n


def test_index_rebuild_on_missing_repository(cv, tmp_path) -> None:
    assert cv("index", "rebuild", "--repo", tmp_path / "nowhere").code == 10


# -- usage --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["no-such-command"],
        ["stats", "--no-such-option"],
        ["index", "frobnicate"],
        ["init", "x", "--pack-size", "many"],
    ],
)
def test_usage_errors_exit_2(cv, argv) -> None:
    r = cv(*argv)
    assert r.code == 2
    assert "Traceback" not in r.err
    assert r.err.startswith("coursevault: error:"), r.err


def test_version(cv) -> None:
    r = cv("version")
    assert r.code == 0 and r.out.startswith("coursevault ")


def test_unlock_via_environment(cv, tmp_path, monkeypatch) -> None:
    repo_dir = tmp_path / "repo"
    assert cv("init", repo_dir).code == 0
    monkeypatch.setenv("COURSEVAULT_REPO", str(repo_dir))
    r = cv("unlock", "--json")
    assert r.code == 0 and json.loads(r.out) == []


def test_init_block_size(cv, tmp_path) -> None:
    r = cv("init", tmp_path / "repo", "--json")
    assert json.loads(r.out)["block_size"] == 1024 * 1024  # the default
    r = cv("init", tmp_path / "small", "--block-size", "128", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["block_size"] == 128 * 1024
    bad = cv("init", tmp_path / "other", "--block-size", "0")
    assert bad.code == 2
    assert "block size must be 1-8192 KiB" in one_error_line(bad.err)
    assert not (tmp_path / "other").exists()
