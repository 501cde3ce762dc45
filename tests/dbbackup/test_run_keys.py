"""A run is logged under its course's key even when the course's own row
cannot be read (an adversarial pass: it went under ``?-2``, which
``runs KEY`` never shows); a site without a ``siteidentifier`` is refused
rather than keyed by the MD5 of an empty string."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from .clirun import Result


def test_a_course_whose_row_cannot_be_read_is_logged_under_its_key(
    cv: Callable[..., Result], tmp_path: Path
) -> None:
    from coursevault.moodledb.demosite import build_demo_site

    db, dataroot = tmp_path / "site.db", tmp_path / "data"
    course = sorted(build_demo_site(f"sqlite:///{db}", dataroot, "S", courses=1).courses)[0]
    site = ("--db", f"sqlite:///{db}", "--dataroot", str(dataroot))
    assert cv("backup", *site, "--course", course).code == 0
    [stored] = json.loads(cv("runs", "--json").out)
    with sqlite3.connect(db) as conn:  # not UTF-8: the driver cannot read the row
        conn.execute("UPDATE mdl_course SET summary = CAST(x'fffe41' AS TEXT) WHERE id = ?",
                     (course,))
    assert cv("backup", *site, "--all").code == 2
    runs = json.loads(cv("runs", stored["course"], "--json").out)
    assert [r["outcome"] for r in runs] == ["stored", "failed"], runs
    assert all(r["course"] == stored["course"] for r in runs)


def test_a_site_without_a_siteidentifier_is_refused(
    cv: Callable[..., Result], tmp_path: Path
) -> None:
    from coursevault.moodledb.demosite import build_demo_site

    db, dataroot = tmp_path / "site.db", tmp_path / "data"
    course = sorted(build_demo_site(f"sqlite:///{db}", dataroot, "S", courses=1).courses)[0]
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM mdl_config WHERE name = 'siteidentifier'")
    site = ("--db", f"sqlite:///{db}", "--dataroot", str(dataroot), "--course", course)
    run = cv("backup", *site)
    assert run.code == 13 and "no siteidentifier" in run.err, run
    assert json.loads(cv("snapshots", "--json").out) == []
    assert cv("backup", *site, "--site", "moodle.example").code == 0


def test_runs_of_a_key_no_course_can_have_is_refused(cv: Callable[..., Result]) -> None:
    """``runs ""`` printed an empty table; other commands refuse such a key."""
    for key in ("", "a b"):
        r = cv("runs", key)
        assert r.code == 2 and "invalid course key" in r.err, r
