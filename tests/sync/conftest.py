"""Fixtures for sync: backends under test, sites (repositories) and real
courses with nights of change.

``BACKENDS`` is the one list of storage kinds the sync tests run over: each
maps a name to a function making a fresh repository location (a string as
users give it) in a test's folder.  Every test takes ``source`` and
``destination`` location makers, parametrised over every pair, so a new
backend (S3 on loopback) is one entry here and runs every test folder → S3,
S3 → folder and S3 → S3.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import CORPUS_DIR

from coursevault import api
from coursevault.cli.app import main
from coursevault.restore.export import export_snapshot
from coursevault.store.replicate import SyncReport
from coursevault.store.repository import Repository

GEN = Path(__file__).resolve().parents[2] / "benchmarks" / "gen_course.py"
NIGHTS = 3

# name -> (folder for this test, repository name) -> location
Location = Callable[[Path, str], str]


def folder_location(tmp: Path, name: str) -> str:
    return str(tmp / "sites" / name)


BACKENDS: dict[str, Location] = {"folder": folder_location}
PAIRS = [(s, d) for s in BACKENDS for d in BACKENDS]

# three real courses: one with files (simplecertificate), two of XML
COURSES = {
    "cert": "mod_simplecertificate_tests_other_backup-test-course-for-moodle3.1-and-above-fixed.mbz",
    "upload": "admin_tool_uploadcourse_tests_fixtures_backup.mbz",
    "quiz": "mod_quiz_tests_fixtures_moodle_311_quiz.mbz",
}


@pytest.fixture(scope="session")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Nights 1..NIGHTS of each course of COURSES (benchmarks/gen_course.py
    replays a Moodle site's nightly change on the corpus archive)."""
    out = tmp_path_factory.mktemp("nights")
    found = {}
    for key, archive in COURSES.items():
        folder = out / key
        subprocess.run(
            [
                sys.executable,
                str(GEN),
                "nights",
                "--out",
                str(folder),
                "--nights",
                str(NIGHTS),
                "--from",
                str(CORPUS_DIR / archive),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        found[key] = [folder / f"night-{n:02d}.mbz" for n in range(1, NIGHTS + 1)]
    return found


@dataclass
class Sites:
    """Locations of repositories for one test, and a private cache."""

    tmp: Path
    source_kind: Location
    destination_kind: Location
    cache: str

    def source(self, name: str) -> str:
        return self.source_kind(self.tmp, name)

    def destination(self, name: str) -> str:
        return self.destination_kind(self.tmp, name)

    def open(self, location: str) -> Repository:
        return api.open_repository(location, cache_dir=self.cache)

    def init(self, location: str) -> str:
        api.init_repository(location)
        return location

    def ingest(self, location: str, archive: Path, course: str) -> str:
        with self.open(location) as repo:
            return api.ingest(repo, str(archive), course=course).snapshot

    def sync(self, src: str, dst: str, **options: object) -> SyncReport:
        return api.sync(src, dst, cache_dir=self.cache, **options)  # type: ignore[arg-type]

    def cli(self, *argv: str) -> int:
        return main([*argv, "--cache-dir", self.cache])

    def snapshots(self, location: str) -> dict[str, str]:
        """id -> course of every snapshot."""
        with self.open(location) as repo:
            return {r.id: r.series for r in repo.snapshots()}

    def exports(self, location: str) -> dict[str, bytes]:
        """Every snapshot exported, by id."""
        out = {}
        with self.open(location) as repo:
            for row in repo.snapshots():
                path = self.tmp / "export.mbz"
                export_snapshot(repo, row.id, str(path))
                out[row.id] = path.read_bytes()
        return out

    def check(self, location: str) -> None:
        with self.open(location) as repo:
            report = api.check(repo, read_data=True)
            assert report.ok, report.errors


@pytest.fixture(params=PAIRS, ids=[f"{s}-to-{d}" for s, d in PAIRS])
def sites(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sites]:
    source, destination = request.param
    yield Sites(tmp_path, BACKENDS[source], BACKENDS[destination], str(tmp_path / "cache"))
