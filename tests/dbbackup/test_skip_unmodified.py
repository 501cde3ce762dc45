"""``backup --skip-unmodified`` skips a course only when its last snapshot
is the backup asked for: a database backup with the same settings."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .clirun import Result


def test_a_narrower_last_backup_is_not_a_reason_to_skip(
    cv: Callable[..., Result], demo: tuple[Path, Path, list[int]]
) -> None:
    """A backup --no-files, then the nightly --skip-unmodified: the course was
    skipped as 'unmodified', so it never got a backup with its files."""
    db, dataroot, courses = demo
    site = ("--db", f"sqlite:///{db}", "--dataroot", str(dataroot), "--course", str(courses[0]))
    assert cv("backup", *site, "--no-files").code == 0
    full = cv("backup", *site, "--skip-unmodified", "--json")
    assert full.code == 0, full.err
    assert [o["outcome"] for o in json.loads(full.out)] == ["stored"]
    again = cv("backup", *site, "--skip-unmodified", "--json")
    assert [o["outcome"] for o in json.loads(again.out)] == ["skipped"]
    narrower = cv("backup", *site, "--no-users", "--skip-unmodified", "--json")
    assert [o["outcome"] for o in json.loads(narrower.out)] == ["stored"]
