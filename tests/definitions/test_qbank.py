"""The question bank (questions.xml) against Moodle's own backups of the reference site.

questions.xml is written by the final task from the question categories
the other tasks annotated.  As in test_final.py, those annotations are
taken from Moodle's backup of the course (its inforef.xml files), so the
question bank is checked whole -- course and quiz banks alike -- whether
or not mod_quiz (which annotates the quiz's banks) is there; only the
questions.xml step of the final task is run, which keeps this fast.

Also checked without a reference backup: every question type and question
bank plugin definition reads tables and columns the reference site's real
schema has, and every question type the site has installed is defined; on
MariaDB (where Moodle's restores gave other ids and stamps) each question
has the same elements as in Moodle's backup.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from reference import MARIADB, backup_members, postgres_reader, unavailable
from test_final import any_module_plan, seed_annotations

from coursevault.definitions.run import start_run, transformer
from coursevault.errors import SiteError
from coursevault.moodledb.site import SiteReader, open_engine, read_transaction
from coursevault.structure import registry
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Table
from coursevault.structure.plan import Task, execute

SITE_COURSES = ("4", "5", "6", "8", "9", "10", "11", "27", "28", "29", "30", "31", "36", "38")
# PostgreSQL course id -> MariaDB course id (courses.tsv), where questions are
MARIADB_COURSES = {"4": "4", "10": "10", "11": "11", "27": "22", "28": "23", "29": "24",
                   "30": "25", "31": "26", "36": "30", "38": "31"}


@pytest.fixture(scope="module")
def site_reader() -> Iterator[SiteReader]:
    yield from postgres_reader()


def _questions_only(task: Task) -> Task:
    steps = task.steps
    return Task(task.name, task.directory, task.params,
                lambda ctx: [s for s in steps(ctx) if s.member == "questions.xml"])


def questions_xml(reader: SiteReader, courseid: str, ref: dict[str, bytes],
                  categories: list[str] | None = None) -> bytes:
    """The final task's questions.xml, with the other tasks' annotations
    from Moodle's backup (or, given ``categories``, those categories)."""
    run = start_run(reader, courseid)
    tasks = any_module_plan(run)
    if categories is None:
        seed_annotations(run, tasks, ref)
    else:
        run.memo["annotations"] = [[("question_category", c) for c in categories]]
    final = [_questions_only(t) for t in tasks if t.name == "final"]
    members = dict(execute(final, run, transform=transformer(run), encrypt=None))
    data = members["questions.xml"]
    assert isinstance(data, bytes)
    return data


@pytest.mark.parametrize("courseid", SITE_COURSES)
def test_questions_identical(site_reader: SiteReader, courseid: str) -> None:
    ref = backup_members(courseid)
    ours = questions_xml(site_reader, courseid, ref)
    if ours != ref["questions.xml"]:
        mine, theirs = ours.decode().splitlines(), ref["questions.xml"].decode().splitlines()
        first = next((i for i, (a, b) in enumerate(zip(mine, theirs, strict=False))
                      if a != b),
                     min(len(mine), len(theirs)))
        pytest.fail(f"questions.xml line {first + 1}: moodle "
                    f"{theirs[first] if first < len(theirs) else 'EOF'!r}, ours "
                    f"{mine[first] if first < len(mine) else 'EOF'!r}")


def _tables(node: Nested) -> Iterator[tuple[Nested, Table]]:
    if isinstance(node.source, Table):
        yield node, node.source
    for child in node.children:
        yield from _tables(child)


def _parts() -> list[tuple[str, Any]]:
    found = {**registry.subplugins("qtype_"), **registry.subplugins("qbank_")}
    return [(name, plugin.extra["question"]) for name, plugin in sorted(found.items())
            if "question" in plugin.extra]


def test_definitions_match_schema(site_reader: SiteReader) -> None:
    """Every table a question part reads has the columns it filters on and
    writes (the site is Moodle 4.5's real schema), though the reference
    site holds no question of most types."""
    ctx = TaskContext(start_run(site_reader, "38"), {})
    wrong = []
    for name, build in _parts():
        for element, table in _tables(build(ctx)):
            columns = {str(r["column_name"]) for r in site_reader.sql(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                [site_reader.prefix + table.table])}
            written = set(element.attrs) | set(element.fields)
            missing = (set(table.where) | written) - columns - set(element.compute)
            if missing:
                wrong.append((name, table.table, sorted(missing)))
    assert wrong == []
    assert {name for name, _ in _parts()} >= {"qbank_comment", "qbank_customfields",
                                              "qtype_multichoice", "qtype_ddmarker"}


def test_every_installed_qtype_defined(site_reader: SiteReader) -> None:
    """A question type installed on the site without a definition would
    silently lose its questions' data."""
    installed = {str(r["plugin"]) for r in site_reader.rows("config_plugins", {"name": "version"})
                 if str(r["plugin"]).startswith("qtype_")}
    assert installed - set(registry.subplugins("qtype_")) == set()


def _shapes(data: bytes) -> dict[tuple[str, str], list[list[str]]]:
    """Per question (name, qtype): the tags of its elements, in order."""
    found: dict[tuple[str, str], list[list[str]]] = {}
    for question in ET.fromstring(data).iter("question"):
        key = (question.findtext("name") or "", question.findtext("qtype") or "")
        found.setdefault(key, []).append([e.tag for e in question.iter()])
    return found


@pytest.fixture(scope="module")
def mariadb_reader() -> Iterator[SiteReader]:
    try:
        with read_transaction(open_engine(MARIADB), "mdl_") as reader:
            reader.one("config", {"name": "version"})
            yield reader
    except SiteError:
        unavailable("the reference site is not loaded in MariaDB (COURSEVAULT_REFSITE_MARIADB)")


@pytest.mark.parametrize("pgcourse", sorted(MARIADB_COURSES, key=int))
def test_mariadb_questions_shape(mariadb_reader: SiteReader, pgcourse: str) -> None:
    """Every bank of the course's contexts (its own and its modules'), from
    MariaDB: the same questions with the same elements as Moodle's backup."""
    courseid = MARIADB_COURSES[pgcourse]
    context = mariadb_reader.one("context", {"contextlevel": 50, "instanceid": courseid})
    assert context is not None
    categories = [str(r["id"]) for r in mariadb_reader.sql(
        "SELECT qc.id FROM {question_categories} qc JOIN {context} c ON c.id = qc.contextid "
        "WHERE c.id = ? OR c.path LIKE ? ORDER BY qc.id", [context["id"], f"{context['path']}/%"])]
    ref = backup_members(pgcourse)
    ours = questions_xml(mariadb_reader, courseid, ref, categories)
    assert _shapes(ours) == _shapes(ref["questions.xml"])
    assert len(re.findall(rb"<question_category ", ours)) == len(
        re.findall(rb"<question_category ", ref["questions.xml"]))
