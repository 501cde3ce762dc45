"""A site whose tables are not Moodle 4.5's (issue 21, "Bad input"): a
column a backup reads is missing -- refused before any course, naming the
table and column, nothing stored -- and a table one course needs is
missing -- that course fails naming it, the others are stored."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from .clirun import Result

EXIT_SITE = 13


def _copy(demo: tuple[Path, Path, list[int]], tmp_path: Path) -> tuple[str, ...]:
    """The demo site (conftest's ``demo``) with a database of the test's own."""
    db, dataroot, _ = demo
    shutil.copy(db, tmp_path / "site.db")
    return ("--db", f"sqlite:///{tmp_path}/site.db", "--dataroot", str(dataroot))


@pytest.mark.parametrize(("table", "column"), [("assign", "intro"), ("course", "fullname")])
def test_a_missing_column_is_refused_before_any_course(
    cv: Callable[..., Result], demo: tuple[Path, Path, list[int]], tmp_path: Path,
    table: str, column: str,
) -> None:
    """assign.intro was backed up as $@NULL@$ in every assignment, exit 0;
    course.fullname ended in "internal error: KeyError"."""
    site = _copy(demo, tmp_path)
    with sqlite3.connect(tmp_path / "site.db") as conn:
        conn.execute(f"ALTER TABLE mdl_{table} RENAME COLUMN {column} TO {column}_gone")
    run = cv("backup", *site, "--all")
    assert run.code == EXIT_SITE, run.err
    assert f"table mdl_{table} has no column {column}: not Moodle 4.5's schema" in run.err
    assert len(run.err.strip().splitlines()) == 1, run.err
    assert json.loads(cv("snapshots", "--json").out) == []


def test_a_table_one_course_needs_fails_that_course_only(
    cv: Callable[..., Result], demo: tuple[Path, Path, list[int]], tmp_path: Path
) -> None:
    """mdl_url dropped, the second course's URLs taken out first: the first
    course fails naming the table (it ended the whole run, exit 13), the
    second is stored, exit 2."""
    site = _copy(demo, tmp_path)
    first, second = demo[2]
    with sqlite3.connect(tmp_path / "site.db") as conn:
        gone = {str(cm) for (cm,) in conn.execute(
            "SELECT cm.id FROM mdl_course_modules cm JOIN mdl_modules m ON m.id = cm.module"
            " WHERE m.name = 'url' AND cm.course = ?", (second,))}
        assert gone
        conn.execute(f"DELETE FROM mdl_course_modules WHERE id IN ({','.join(gone)})")
        for sid, sequence in conn.execute(
                "SELECT id, sequence FROM mdl_course_sections WHERE course = ?", (second,)
        ).fetchall():
            kept = ",".join(c for c in (sequence or "").split(",") if c and c not in gone)
            conn.execute("UPDATE mdl_course_sections SET sequence = ? WHERE id = ?", (kept, sid))
        conn.execute("DROP TABLE mdl_url")
    run = cv("backup", *site, "--all", "--json")
    assert run.code == 2, run.err
    outcomes = {o["course_id"]: o for o in json.loads(run.out)}
    assert outcomes[first]["outcome"] == "failed"
    assert "mdl_url" in outcomes[first]["error"], outcomes[first]
    assert "plugin uninstalled" in outcomes[first]["error"]
    assert outcomes[second]["outcome"] == "stored"


@pytest.mark.parametrize(("column", "said"), [
    ("instance", "its instance 999999 is not in mdl_page"),
    ("module", "its module 999999 is not in mdl_modules"),
    ("section", "its section 999999 is not a section of the course"),
])
def test_a_course_module_whose_rows_do_not_hold_together_fails_its_course(
    cv: Callable[..., Result], demo: tuple[Path, Path, list[int]], tmp_path: Path,
    column: str, said: str,
) -> None:
    """As Moodle's backup fails on it (get_coursemodule_from_id): before, a
    missing instance was stored, exit 0, as an activity without its page; an
    unknown module was 'no definition for mod_None'; a missing section a
    malformed module.xml."""
    site = _copy(demo, tmp_path)
    first, second = demo[2]
    with sqlite3.connect(tmp_path / "site.db") as conn:
        (cmid,) = conn.execute(
            "SELECT cm.id FROM mdl_course_modules cm JOIN mdl_modules m ON m.id = cm.module"
            " WHERE m.name = 'page' AND cm.course = ? ORDER BY cm.id LIMIT 1", (first,)
        ).fetchone()
        conn.execute(f"UPDATE mdl_course_modules SET {column} = 999999 WHERE id = ?", (cmid,))
    run = cv("backup", *site, "--all", "--json")
    assert run.code == 2, run.err
    outcomes = {o["course_id"]: o for o in json.loads(run.out)}
    assert outcomes[first]["outcome"] == "failed"
    assert outcomes[first]["error"] == f"course {first}: course module {cmid}: {said}"
    assert outcomes[second]["outcome"] == "stored"


def test_a_missing_column_on_postgresql_is_found_in_its_catalog(
    cv: Callable[..., Result], refsite_copy: str, tmp_path: Path
) -> None:
    """The same check on PostgreSQL, which reads pg_catalog (a copy of the
    reference site, whose columns all pass)."""
    import sqlalchemy as sa

    engine = sa.create_engine(refsite_copy)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE mdl_glossary RENAME COLUMN intro TO intro_gone")
    engine.dispose()
    (tmp_path / "data" / "filedir").mkdir(parents=True)
    run = cv("backup", "--db", refsite_copy, "--dataroot", tmp_path / "data", "--all")
    assert run.code == EXIT_SITE, run.err
    assert "table mdl_glossary has no column intro: not Moodle 4.5's schema" in run.err
