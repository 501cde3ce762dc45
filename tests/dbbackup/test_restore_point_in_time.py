"""Restore a point in time (issue 23, "Point in time"): night N of a demo
course's history comes back with night N's data -- its users' posts,
submissions and grades of that night, not later ones -- whichever night
is asked for (SQLite demo site: no server needed)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from .clirun import Result

COUNTS = {
    "posts": "SELECT COUNT(*) FROM mdl_forum_posts p JOIN mdl_forum_discussions d "
             "ON d.id = p.discussion WHERE d.course = ?",
    "submissions": "SELECT COUNT(*) FROM mdl_assign_submission s JOIN mdl_assign a "
                   "ON a.id = s.assignment WHERE a.course = ?",
    "grades": "SELECT COUNT(*) FROM mdl_grade_grades g JOIN mdl_grade_items i "
              "ON i.id = g.itemid WHERE i.courseid = ?",
    "files": "SELECT COUNT(*) FROM mdl_files f JOIN mdl_context c ON c.id = f.contextid "
             "WHERE (c.contextlevel = 50 AND c.instanceid = ?) OR c.path LIKE "
             "(SELECT path FROM mdl_context WHERE contextlevel = 50 AND instanceid = ?) || '/%'",
}


def _counts(db: Path, course: int) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {name: int(conn.execute(sql, (course,) * sql.count("?")).fetchone()[0])
                for name, sql in COUNTS.items()}


def test_each_night_restores_to_its_own_data(cv: Callable[..., Result],
                                              tmp_path: Path) -> None:
    db = tmp_path / "site.db"
    site = ("--db", f"sqlite:///{db}", "--dataroot", str(tmp_path / "data"))
    assert cv("demo-site", *site, "--size", "S", "--courses", "1").code == 0
    nights: list[tuple[str, dict[str, int]]] = []
    for night in range(3):
        if night:
            churn = cv("demo-site", *site, "--churn")
            assert churn.code == 0, churn.err
        backup = cv("backup", *site, "--course", "2", "--json")
        assert backup.code == 0, backup.err
        nights.append((json.loads(backup.out)[0]["snapshot"], _counts(db, 2)))
    assert nights[0][1] != nights[2][1]  # the nights did change the course
    for snapshot, counts in (nights[1], nights[0]):
        restored = cv("restore", snapshot, *site, "--json")
        assert restored.code == 0, restored.err
        course = json.loads(restored.out)["courseid"]
        assert _counts(db, course) == counts, snapshot
