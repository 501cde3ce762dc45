"""A demo course looks like the one Moodle's course generator made: gen_s.

Course 2 of a size-S demo site and course 2 of the reference site (gen_s,
made by tool_generator size S) are compared table by table: once the
columns a generator varies on purpose are set aside (ids, links, names,
texts, times), every demo row must be a row gen_s has.  So flags, formats
and serialised options are Moodle's own, not guesses.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from coursevault.moodledb.demosite import build_demo_site

COURSE = 2  # gen_s on the reference site; the first demo course
IN_COURSE_CONTEXT = (
    "(SELECT id FROM mdl_context WHERE path LIKE '/1/%' AND instanceid = 2 AND contextlevel = 50)"
)
# table -> (rows of course 2, columns a generator varies)
TABLES: dict[str, tuple[str, set[str]]] = {
    "course": ("id = 2", {"id", "category", "sortorder", "fullname", "shortname", "summary", "startdate", "timecreated", "timemodified", "cacherev"}),
    "course_sections": ("course = 2", {"id", "course", "sequence", "timemodified"}),
    "course_modules": (
        "course = 2 AND module IN (SELECT id FROM mdl_modules WHERE name IN ('assign', 'forum', 'page', 'resource'))",
        {"id", "course", "instance", "section", "added"},
    ),
    "course_format_options": ("courseid = 2", {"id", "courseid"}),
    "assign": ("course = 2", {"id", "course", "name", "intro", "timemodified", "nosubmissions"}),
    "page": ("course = 2", {"id", "course", "name", "intro", "content", "timemodified"}),
    "resource": ("course = 2", {"id", "course", "name", "intro", "timemodified"}),
    "forum": ("course = 2", {"id", "course", "timemodified"}),
    "forum_discussions": ("course = 2", {"id", "course", "forum", "firstpost", "userid", "usermodified", "timemodified", "name"}),
    "forum_posts": (
        "discussion IN (SELECT id FROM mdl_forum_discussions WHERE course = 2)",
        {"id", "discussion", "parent", "userid", "created", "modified", "subject", "message", "wordcount", "charcount"},
    ),
    "enrol": ("courseid = 2", {"id", "courseid", "timecreated", "timemodified"}),
    "user_enrolments": ("enrolid IN (SELECT id FROM mdl_enrol WHERE courseid = 2)", {"id", "enrolid", "userid", "timecreated", "timemodified"}),
    "role_assignments": (f"contextid IN {IN_COURSE_CONTEXT}", {"id", "contextid", "userid", "timemodified"}),
    "grade_categories": ("courseid = 2", {"id", "courseid", "path", "timecreated", "timemodified"}),
    "grade_items": ("courseid = 2", {"id", "courseid", "categoryid", "itemname", "iteminstance", "sortorder", "timecreated", "timemodified"}),
    "user": ("username LIKE 'tool_generator_%%'", {"id", "username", "firstname", "lastname", "email", "timecreated", "timemodified"}),
    "files": (
        "component = 'mod_resource' AND contextid IN (SELECT id FROM mdl_context WHERE contextlevel = 70 AND instanceid IN (SELECT id FROM mdl_course_modules WHERE course = 2))",
        {"id", "contenthash", "pathnamehash", "contextid", "filename", "filesize", "timecreated", "timemodified"},
    ),
}  # fmt: skip


def _rows(url: str, table: str, where: str, varying: set[str]) -> set[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        result = conn.execute(sa.text(f"SELECT * FROM mdl_{table} WHERE {where}"))
        names = result.keys()  # not the rows: iterating the result would consume them
        keys = [k for k in names if k not in varying]
        rows = {tuple(_plain(row._mapping[k]) for k in keys) for row in result}
    engine.dispose()
    return rows


def _plain(value: Any) -> Any:
    """Numbers as numbers: SQLite keeps numeric(10,5)'s 0.10000 as the float 0.1."""
    if isinstance(value, (Decimal, float)):
        return round(float(value), 7)
    return value


@pytest.fixture(scope="module")
def demo_s(tmp_path_factory: pytest.TempPathFactory) -> str:
    root: Path = tmp_path_factory.mktemp("fidelity")
    build_demo_site(f"sqlite:///{root}/site.db", root / "data", "S", seed=3)
    return f"sqlite:///{root}/site.db"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_a_demo_course_is_made_as_gen_s(table: str, demo_s: str, reference_site_pg: str) -> None:
    where, varying = TABLES[table]
    ours = _rows(demo_s, table, where.replace("%%", "%"), varying)
    theirs = _rows(reference_site_pg, table, where, varying)
    assert ours and theirs
    assert ours <= theirs, f"{table}: not as gen_s has them: {sorted(ours - theirs, key=str)[:3]}"


RICH = 38  # the reference site's hand-made course: where the extras and user data start from
ASSIGNS = "assignment IN (SELECT id FROM mdl_assign WHERE course = {course})"
# table -> (rows of a course, columns the generator varies), compared with rich's
FROM_RICH: dict[str, tuple[str, set[str]]] = {
    "label": ("course = {course}", {"id", "course", "name", "intro", "timemodified"}),
    "url": ("course = {course}", {"id", "course", "name", "intro", "externalurl", "timemodified"}),
    "folder": ("course = {course}", {"id", "course", "timemodified"}),
    "glossary": ("course = {course}", {"id", "course", "assessed", "timecreated", "timemodified"}),
    "choice": ("course = {course}", {"id", "course", "timemodified"}),
    "glossary_entries": (
        "glossaryid IN (SELECT id FROM mdl_glossary WHERE course = {course})",
        {"id", "glossaryid", "userid", "concept", "definition", "teacherentry", "timecreated", "timemodified"},
    ),
    "choice_answers": (
        "choiceid IN (SELECT id FROM mdl_choice WHERE course = {course})",
        {"id", "choiceid", "userid", "optionid", "timemodified"},
    ),
    "assign_submission": (ASSIGNS, {"id", "assignment", "userid", "timecreated", "timemodified"}),
    "assignsubmission_onlinetext": (ASSIGNS, {"id", "assignment", "submission", "onlinetext"}),
    "assign_grades": (ASSIGNS, {"id", "assignment", "userid", "grader", "grade", "timecreated", "timemodified"}),
    "assignfeedback_comments": (ASSIGNS, {"id", "assignment", "grade", "commenttext"}),
}  # fmt: skip


@pytest.mark.parametrize("table", sorted(FROM_RICH))
def test_extras_and_user_data_are_made_as_rich(
    table: str, demo_s: str, reference_site_pg: str
) -> None:
    where, varying = FROM_RICH[table]
    ours = _rows(demo_s, table, where.format(course=COURSE), varying)
    theirs = _rows(reference_site_pg, table, where.format(course=RICH), varying)
    assert ours and theirs
    assert ours <= theirs, f"{table}: not as rich has them: {sorted(ours - theirs, key=str)[:3]}"
