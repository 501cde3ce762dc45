"""A repository written by an earlier version keeps working (borg #10189 slipped
through tests that only used fresh repositories).

``tests/fixtures/aged-format3`` was written by 786f38c (its README says how);
every later version must check it clean, export each of its snapshots to the
archive it was ingested from, byte for byte, and add to it.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from helpers import CORPUS_DIR, read_members

AGED = Path(__file__).resolve().parents[1] / "fixtures" / "aged-format3"
SOURCES = {
    "6986ab92958b": "mod_studentquiz_tests_fixtures_backup-moodle2-aggregated-before.mbz",
    "504749890b7d": "mod_studentquiz_tests_fixtures_backup-moodle2-aggregated-during-0.mbz",
    "cc0cde18ca49": "mod_studentquiz_tests_fixtures_backup-moodle2-aggregated-during-1.mbz",
    "b8b353f898c8": "mod_quiz_tests_fixtures_moodle_311_quiz.mbz",
    "fb2d43874b94": "backup_moodle2_tests_fixtures_question_category_35_format.mbz",
    "ec27ddeab196": "mod_quiz_tests_fixtures_moodle_28_quiz.mbz",
}


@pytest.fixture
def aged(tmp_path: Path) -> Path:
    repo = tmp_path / "aged"
    shutil.copytree(AGED, repo, ignore=shutil.ignore_patterns("README.md"))
    return repo


def same_archive(out: Path, source: Path) -> bool:
    """What ingest promises: every member (name, kind, bytes) in order, and
    for a tgz the whole tar stream."""
    if read_members(out) != read_members(source):
        return False
    if source.read_bytes()[:2] == b"\x1f\x8b":
        return gzip.decompress(out.read_bytes()) == gzip.decompress(source.read_bytes())
    return True


def test_an_aged_repository_checks_clean_and_exports_exactly(cv, aged, tmp_path) -> None:
    r = cv("check", "-r", aged, "--read-data", "--json")
    assert r.code == 0, r.out
    assert json.loads(r.out)["snapshots"] == len(SOURCES)
    rows = json.loads(cv("snapshots", "-r", aged, "--json").out)
    assert {row["id"][:12] for row in rows} == set(SOURCES)
    for row in rows:
        out = tmp_path / f"{row['id'][:12]}.mbz"
        r = cv("export", "-r", aged, row["id"], "-o", out)
        assert r.code == 0, r.err
        assert same_archive(out, CORPUS_DIR / SOURCES[row["id"][:12]]), row["id"]


def test_an_aged_repository_takes_new_nights(cv, aged, tmp_path) -> None:
    """A new night of a course whose head ref an old version wrote follows it,
    and forget + prune work over old and new snapshots alike."""
    night = CORPUS_DIR / SOURCES["cc0cde18ca49"]
    r = cv("ingest", "-r", aged, "--course", "sq", "--time", "2020-01-01T00:00", night, "--json")
    assert r.code == 0, r.err
    new = json.loads(r.out)
    rows = {row["id"]: row for row in json.loads(cv("snapshots", "-r", aged, "--json").out)}
    assert len(rows) == len(SOURCES) + 1 and new["snapshot"] in rows
    assert [p[:12] for p in rows[new["snapshot"]]["parents"]] == ["cc0cde18ca49"]
    assert (aged / "snapshots" / new["snapshot"]).is_file()  # its layout kept: no subfolders
    # (its document nodes now name their length: new ones above unchanged records)
    r = cv("ingest", "-r", aged, "--course", "sq", "--time", "2020-01-02T00:00", night, "--json")
    assert r.code == 0 and json.loads(r.out)["new_objects"] == 0, r.out
    assert cv("forget", "-r", aged, "sq", "--keep-last", "2").code == 0
    assert cv("prune", "-r", aged).code == 0
    assert cv("check", "-r", aged, "--read-data").code == 0
    out = tmp_path / "new.mbz"
    assert cv("export", "-r", aged, new["snapshot"], "-o", out).code == 0
    assert same_archive(out, night)


def test_an_aged_repository_syncs_both_ways_with_a_current_one(cv, aged, tmp_path) -> None:
    """Format 5 puts snapshot records in subfolders; 3 keeps them in one.
    The objects are the same, so the two sync into each other, and each
    side writes records where its own layout puts them."""
    hub, current = tmp_path / "hub", tmp_path / "current"
    assert cv("sync", aged, hub).code == 0  # a new hub takes the current layout
    assert json.loads((hub / "config").read_text())["version"] == 5
    assert all(
        len(p.relative_to(hub).parts) == 3 for p in (hub / "snapshots").rglob("*") if p.is_file()
    )
    assert cv("init", "-r", current).code == 0
    night = CORPUS_DIR / SOURCES["b8b353f898c8"]
    r = cv(
        "ingest", "-r", current, "--course", "new", "--time", "2021-01-01T00:00", night, "--json"
    )
    assert r.code == 0, r.err
    made = json.loads(r.out)["snapshot"]
    assert (current / "snapshots" / made[:2] / made).is_file()
    assert cv("sync", current, aged).code == 0  # into the flat layout: flat
    assert (aged / "snapshots" / made).is_file()
    assert cv("sync", aged, current).code == 0
    for repo in (aged, current, hub):
        r = cv("check", "-r", repo, "--read-data", "--json")
        assert r.code == 0, r.out
    assert len(json.loads(cv("snapshots", "-r", current, "--json").out)) == len(SOURCES) + 1
    for row in json.loads(cv("snapshots", "-r", current, "--json").out):
        out = tmp_path / f"{row['id'][:12]}.mbz"
        assert cv("export", "-r", current, row["id"], "-o", out).code == 0
        source = night if row["id"] == made else CORPUS_DIR / SOURCES[row["id"][:12]]
        assert same_archive(out, source), row["id"]
