"""A demo site of two S courses on SQLite, for the tests that install a
third-party plugin beside it (test_plugin_failures, test_plugin_restore)."""

from __future__ import annotations

from pathlib import Path


def two_course_site(tmp_path: Path) -> tuple[Path, tuple[str, str, str, Path], list[int]]:
    """(its database file, the CLI's --db/--dataroot options, its course ids)."""
    from coursevault.moodledb.demosite import build_demo_site

    db, dataroot = tmp_path / "site.db", tmp_path / "data"
    courses = sorted(build_demo_site(f"sqlite:///{db}", dataroot, "S", courses=2).courses)
    return db, ("--db", f"sqlite:///{db}", "--dataroot", dataroot), courses
