"""The tiny demo course the restore's all-or-nothing tests (test_atomic.py)
and ``--replace``'s (test_replace.py) restore: backed up from one demo
site (SQLite), with another demo site to restore it into; built once a
session by conftest's ``tiny`` fixture."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from coursevault import api
from coursevault.cli.app import main
from coursevault.moodledb import demosite

from .atomic_helpers import SiteProbe

# tool_generator's S shrunk to a course of two sections, one assignment, forum,
# page, folder, glossary and choice and a resource of two small files, with
# three users; the target site has one of them, so the restore both matches
# and creates users.  Its restore takes about a hundred steps.
TINY = demosite.DemoSize("T", 3, 1, 1, 2, 1, 2, 2048, 0, 0, 2, 0, 0, 1, 1, 2)
TINY_TARGET = demosite.DemoSize("U", 1, 1, 1, 2, 1, 2, 2048, 0, 0, 2, 0, 0, 1, 1, 2)


@dataclass(frozen=True)
class Tiny:
    repo: str
    snapshot: str
    target: Path  # the target site's database file and data folder, kept as built

    def copy(self, where: Path) -> SiteProbe:
        where.mkdir(parents=True)
        shutil.copy(self.target / "site.db", where / "site.db")
        shutil.copytree(self.target / "data", where / "data")
        return SiteProbe(f"sqlite:///{where / 'site.db'}", str(where / "data"))


def build_tiny(root: Path) -> Tiny:
    """The source site's course 2 backed up into a repository, and the target site."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(demosite.SIZES, "T", TINY)
        mp.setitem(demosite.SIZES, "U", TINY_TARGET)
        demosite.build_demo_site(f"sqlite:///{root / 'source.db'}", root / "sdata", "T", seed=1)
        target = root / "target"
        demosite.build_demo_site(f"sqlite:///{target / 'site.db'}", target / "data", "U", seed=2)
    repo = str(root / "repo")
    assert main(["-r", repo, "init"]) == 0
    source = ["--db", f"sqlite:///{root / 'source.db'}", "--dataroot", str(root / "sdata")]
    assert main(["-r", repo, "backup", *source, "--course", "2"]) == 0
    with api.open_repository(repo) as r:
        snapshot = api.list_snapshots(r)[0]["id"]
    return Tiny(repo, snapshot, target)
