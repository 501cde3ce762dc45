"""The repositories of one sync test ("sites") and what tests do with them.

A module of its own, not in conftest.py: tests import ``Sites`` for its
type, and tests never import a conftest (tests/test_source.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coursevault import api
from coursevault.cli.app import main
from coursevault.restore.export import export_snapshot
from coursevault.store.replicate import SyncReport
from coursevault.store.repository import Repository

# (folder for this test, repository name) -> location, as a user gives it
Location = Callable[[Path, str], str]


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
