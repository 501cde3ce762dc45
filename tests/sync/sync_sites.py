"""The repositories of one sync test ("sites") and what tests do with them.

A module of its own, not in conftest.py: tests import ``Sites`` for its
type, and tests never import a conftest (tests/test_source.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from coursevault import api
from coursevault.cli.app import main
from coursevault.restore.export import export_snapshot
from coursevault.store.replicate import SyncReport
from coursevault.store.repository import Repository

# (folder for this test, repository name) -> location, as a user gives it
Location = Callable[[Path, str], str]
# course name -> how many of its nights a source holds ("upload-2": upload's)
Courses = dict[str, int]
# source repositories built once in a test process, by what they hold
_TEMPLATES: dict[tuple[object, ...], Path] = {}


@dataclass
class Sites:
    """Locations of repositories for one test, and a private cache."""

    tmp: Path
    source_kind: Location
    destination_kind: Location
    cache: str
    # where templates are built (a folder of the session)
    templates: Path = field(default_factory=Path)

    def source(self, name: str) -> str:
        return self.source_kind(self.tmp, name)

    def destination(self, name: str) -> str:
        return self.destination_kind(self.tmp, name)

    def open(self, location: str) -> Repository:
        return api.open_repository(location, cache_dir=self.cache)

    def init(self, location: str) -> str:
        api.init_repository(location)
        return location

    def seeded(self, name: str, nights: dict[str, list[Path]], courses: Courses,
               pack_size: int | None = None) -> str:
        """A source repository holding the first n nights of each course, in
        order.  Built once per test process in a folder, then copied file by
        file to the source's kind: a copy is the same repository (a folder
        and a bucket hold the same keys), and 26 ingests into a bucket took
        20 s of every S3-source test that needed them."""
        key = (pack_size, *courses.items())
        template = _TEMPLATES.get(key)
        if template is None:
            template = self.templates / f"template-{len(_TEMPLATES)}"
            if pack_size is None:
                self.init(str(template))
            else:
                Repository.init(api.backend_for(str(template)), pack_size=pack_size)
            # a cache of its own: the test's stays cold for the copy
            own = str(self.templates / "cache")
            with api.open_repository(str(template), cache_dir=own) as repo:
                for course, n in courses.items():
                    for archive in nights[course.split("-")[0]][:n]:
                        api.ingest(repo, str(archive), course=course)
            _TEMPLATES[key] = template
        location = self.source(name)
        if not location.startswith("s3://"):
            shutil.copytree(template, location)
            return location
        source, copy = api.backend_for(str(template)), api.backend_for(location)
        for file, _size in source.list(""):
            copy.write(file, source.read(file))
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
