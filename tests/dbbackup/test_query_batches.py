"""Issue 21: a course's queries are batched, never one per row.

A source bound to its parent element runs once for all parents (an IN
list), and a source bound to the task once per window of the plan's tasks:
so no query text runs more often than the course has activities, however
many users, submissions or grades it holds.  A definition written as a
plain per-parent ``Sql`` (as feedback_editpdf's files were: one query per
assignment grade, 30,070 of an M course's 30,988) breaks this and is caught
here on a demo course with 334 grades in its 10 assignments.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from coursevault.definitions.run import course_members, start_run
from coursevault.moodledb import site
from coursevault.moodledb.demosite import build_demo_site


def test_no_query_runs_once_per_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/site.db"
    build_demo_site(url, tmp_path / "data", "S", seed=1)
    shapes: Counter[str] = Counter()
    original = site.SiteReader._run

    def counting(self: site.SiteReader, query: Any) -> Any:
        shapes[re.sub(r"\s+", " ", str(query))] += 1
        return original(self, query)

    monkeypatch.setattr(site.SiteReader, "_run", counting)
    engine = site.open_engine(url)
    with site.read_transaction(engine, "mdl_") as reader:
        run = start_run(reader, 2)
        run.dataroot = str(tmp_path / "data")
        members = sum(1 for _ in course_members(run))
        grades = next(reader.sql("SELECT COUNT(*) AS n FROM {assign_grades}"))["n"]
        activities = next(reader.sql("SELECT COUNT(*) AS n FROM {course_modules}"))["n"]
    assert members > 100 and int(grades) > int(activities)  # rows enough to tell
    worst, count = shapes.most_common(1)[0]
    assert count <= int(activities), f"{count} runs of {worst}"
