"""A quiz's night, written into a private copy of a Moodle site as Moodle
writes it: a student's new attempt, or a teacher's new version of a question.

Plain code, not fixtures: test_incremental_quiz.py runs these nights and
benchmarks/dbbackup_bench.py times the backups after them, so the figures
and the test are about the same rows.  Each night copies rows Moodle itself
wrote (another student's attempt, the question's current version) under new
ids, so every value has Moodle's shape; only who, when and the ids are new.
Never run on cv_refsite: the tests' site stays as Moodle left it.  The
queries that pick a quiz, a student or a question assume the reference
site's prefix, mdl_.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from coursevault.moodledb.schema import moodle_metadata

ATTEMPT_TABLES = (
    "quiz",
    "quiz_attempts",
    "quiz_grades",
    "question_usages",
    "question_attempts",
    "question_attempt_steps",
    "question_attempt_step_data",
    "course_modules",
    "modules",
    "grade_items",
    "grade_grades",
    "course_modules_completion",
)
# The question types whose own rows name the question and nothing else (no
# answer ids), so a copy of them is the type's part of a new version.
QTYPE_TABLES = {
    "shortanswer": ("qtype_shortanswer_options",),
    "essay": ("qtype_essay_options",),
    "multichoice": ("qtype_multichoice_options",),
}
VERSION_TABLES = (
    "question",
    "question_versions",
    "question_answers",
    "question_hints",
    *(t for tables in QTYPE_TABLES.values() for t in tables),
)


@dataclass(frozen=True)
class NewAttempt:
    """What an attempt night wrote: the ids the test looks for in the backup."""

    attempt_id: int
    usage_id: int
    quiz_grade_id: int
    grade_grade_id: int  # the quiz grade item's row of that user (updated)
    total_grade_ids: tuple[int, ...]  # the user's category and course totals (updated)
    completion_id: int | None  # the quiz's completion row of that user, if it tracks one


@dataclass(frozen=True)
class NewVersion:
    question_id: int
    version_id: int
    version: int


class _Site:
    """Moodle's tables on one connection, with inserts that return the new id."""

    def __init__(self, conn: sa.Connection, tables: tuple[str, ...], prefix: str) -> None:
        self.conn = conn
        self.prefix = prefix
        self.tables = moodle_metadata(prefix, tables).tables

    def table(self, name: str) -> sa.Table:
        return self.tables[self.prefix + name]

    def rows(self, name: str, *where: Any, order: str = "id") -> list[dict[str, Any]]:
        t = self.table(name)
        query = sa.select(t).where(*where).order_by(t.c[order])
        return [dict(r._mapping) for r in self.conn.execute(query)]

    def one(self, name: str, *where: Any) -> dict[str, Any]:
        rows = self.rows(name, *where)
        if len(rows) != 1:
            raise LookupError(f"{len(rows)} rows of {name} where {where}")
        return rows[0]

    def insert(self, name: str, row: dict[str, Any], **changes: Any) -> int:
        t = self.table(name)
        values = {k: v for k, v in {**row, **changes}.items() if k != "id"}
        return int(self.conn.execute(t.insert().values(values).returning(t.c.id)).scalar_one())

    def update(self, name: str, row_id: int, **changes: Any) -> None:
        t = self.table(name)
        self.conn.execute(t.update().where(t.c.id == row_id).values(changes))


def quiz_with_attempts(conn: sa.Connection, course: int) -> tuple[int, int, int]:
    """The course's quiz with attempts, its course module, and a student
    enrolled in the course without an attempt."""
    quiz, cm = conn.execute(
        sa.text(
            "SELECT q.id, cm.id FROM mdl_quiz q JOIN mdl_modules m ON m.name = 'quiz'"
            " JOIN mdl_course_modules cm ON cm.module = m.id AND cm.instance = q.id"
            " WHERE q.course = :c AND EXISTS (SELECT 1 FROM mdl_quiz_attempts a WHERE a.quiz = q.id)"
            " ORDER BY q.id LIMIT 1"
        ),
        {"c": course},
    ).one()
    student = conn.execute(
        sa.text(
            "SELECT ue.userid FROM mdl_user_enrolments ue JOIN mdl_enrol e ON e.id = ue.enrolid"
            " JOIN mdl_context ctx ON ctx.contextlevel = 50 AND ctx.instanceid = e.courseid"
            " JOIN mdl_role_assignments ra ON ra.contextid = ctx.id AND ra.userid = ue.userid"
            " JOIN mdl_role r ON r.id = ra.roleid AND r.shortname = 'student'"
            " WHERE e.courseid = :c AND ue.userid NOT IN"
            " (SELECT userid FROM mdl_quiz_attempts WHERE quiz = :q)"
            " ORDER BY ue.userid LIMIT 1"
        ),
        {"c": course, "q": quiz},
    ).scalar_one()
    return int(quiz), int(cm), int(student)


def add_quiz_attempt(
    conn: sa.Connection, quiz_id: int, user_id: int, now: int, *, prefix: str = "mdl_"
) -> NewAttempt:
    """A finished, graded attempt by ``user_id`` (a student enrolled in the
    course who has none yet), copied from the quiz's first attempt with its
    question usage, question attempts, steps and step data; then what
    finishing and grading it writes: the best grade (quiz_grades), the quiz
    grade item's grade for the user, the activity's completion when the quiz
    completes on a grade, and the user's category and course totals, which
    Moodle's regrade recomputes at once (grade_item::update_final_grade).
    The totals' new values are not Moodle's aggregation, but they are the
    rows it writes, which is what a backup's increment depends on.  Steps
    the teacher wrote (a manual grade) keep their author."""
    site = _Site(conn, ATTEMPT_TABLES, prefix)
    qa_table = site.table("quiz_attempts")
    model = site.rows("quiz_attempts", qa_table.c.quiz == quiz_id, qa_table.c.preview == 0)[0]
    if site.rows("quiz_attempts", qa_table.c.quiz == quiz_id, qa_table.c.userid == user_id):
        raise ValueError(f"user {user_id} already attempted quiz {quiz_id}")
    usage_id = _copy_usage(site, model, user_id, now)
    attempt_id = site.insert(
        "quiz_attempts",
        model,
        userid=user_id,
        uniqueid=usage_id,
        timestart=now,
        timefinish=now,
        timemodified=now,
        gradednotificationsenttime=now,
    )
    qg = site.table("quiz_grades")
    best = site.one("quiz_grades", qg.c.quiz == quiz_id, qg.c.userid == model["userid"])
    quiz_grade_id = site.insert("quiz_grades", best, userid=user_id, timemodified=now)
    quiz = site.one("quiz", site.table("quiz").c.id == quiz_id)
    gi = site.table("grade_items")
    item = site.one(
        "grade_items",
        gi.c.courseid == quiz["course"],
        gi.c.itemtype == "mod",
        gi.c.itemmodule == "quiz",
        gi.c.iteminstance == quiz_id,
        gi.c.itemnumber == 0,
    )
    grade_grade_id = _grade_like(site, item["id"], model["userid"], user_id, now)
    totals = _regrade_totals(site, quiz["course"], user_id, best["grade"], now)
    return NewAttempt(
        attempt_id,
        usage_id,
        quiz_grade_id,
        grade_grade_id,
        totals,
        _complete_on_grade(site, quiz, user_id, now),
    )


def _copy_usage(site: _Site, model: dict[str, Any], user_id: int, now: int) -> int:
    usages = site.table("question_usages")
    usage_id = site.insert(
        "question_usages", site.one("question_usages", usages.c.id == model["uniqueid"])
    )
    qas = site.table("question_attempts")
    steps = site.table("question_attempt_steps")
    data = site.table("question_attempt_step_data")
    for qa in site.rows("question_attempts", qas.c.questionusageid == model["uniqueid"]):
        qa_id = site.insert("question_attempts", qa, questionusageid=usage_id, timemodified=now)
        for step in site.rows("question_attempt_steps", steps.c.questionattemptid == qa["id"]):
            author = user_id if step["userid"] == model["userid"] else step["userid"]
            step_id = site.insert(
                "question_attempt_steps",
                step,
                questionattemptid=qa_id,
                userid=author,
                timecreated=now,
            )
            for value in site.rows(
                "question_attempt_step_data", data.c.attemptstepid == step["id"]
            ):
                site.insert("question_attempt_step_data", value, attemptstepid=step_id)
    return usage_id


_GRADE_FIELDS = (
    "rawgrade",
    "rawgrademax",
    "rawgrademin",
    "rawscaleid",
    "usermodified",
    "finalgrade",
    "feedback",
    "feedbackformat",
    "aggregationstatus",
    "aggregationweight",
)


def _grade_like(site: _Site, item_id: int, model_user: int, user_id: int, now: int) -> int:
    """The user's grade of an item made what the model user's grade is (the
    row exists, empty, for every enrolled user once the gradebook was shown)."""
    gg = site.table("grade_grades")
    model = site.one("grade_grades", gg.c.itemid == item_id, gg.c.userid == model_user)
    mine = site.rows("grade_grades", gg.c.itemid == item_id, gg.c.userid == user_id)
    fields = {k: model[k] for k in _GRADE_FIELDS}
    if not mine:
        return site.insert("grade_grades", model, userid=user_id, timecreated=now, timemodified=now)
    site.update(
        "grade_grades",
        mine[0]["id"],
        **fields,
        timecreated=mine[0]["timecreated"] or now,
        timemodified=now,
    )
    return int(mine[0]["id"])


def _regrade_totals(
    site: _Site, course: int, user_id: int, grade: Any, now: int
) -> tuple[int, ...]:
    gi = site.table("grade_items")
    gg = site.table("grade_grades")
    totals = []
    for item in site.rows(
        "grade_items", gi.c.courseid == course, gi.c.itemtype.in_(("course", "category"))
    ):
        for total in site.rows("grade_grades", gg.c.itemid == item["id"], gg.c.userid == user_id):
            final = (total["finalgrade"] or 0) + grade
            site.update("grade_grades", total["id"], finalgrade=final, timemodified=now)
            totals.append(int(total["id"]))
    return tuple(totals)


def _complete_on_grade(site: _Site, quiz: dict[str, Any], user_id: int, now: int) -> int | None:
    """The completion row Moodle's completion_info::update_state writes when
    the quiz completes automatically once graded (completion 2, on grade)."""
    cm_t, mod_t = site.table("course_modules"), site.table("modules")
    module = site.one("modules", mod_t.c.name == "quiz")
    cm = site.one("course_modules", cm_t.c.module == module["id"], cm_t.c.instance == quiz["id"])
    if cm["completion"] != 2 or cm["completiongradeitemnumber"] is None:
        return None
    row = {
        "coursemoduleid": cm["id"],
        "userid": user_id,
        "completionstate": 1,
        "overrideby": None,
        "timemodified": now,
    }
    return site.insert("course_modules_completion", row)


def quiz_question_entry(conn: sa.Connection, course: int) -> tuple[int, int, int]:
    """A shortanswer question bank entry the course's quiz uses (its category),
    and the editing teacher who wrote it."""
    entry, category, owner = conn.execute(
        sa.text(
            "SELECT e.id, e.questioncategoryid, e.ownerid FROM mdl_question_references r"
            " JOIN mdl_quiz_slots s ON s.id = r.itemid AND r.component = 'mod_quiz'"
            "   AND r.questionarea = 'slot'"
            " JOIN mdl_quiz q ON q.id = s.quizid"
            " JOIN mdl_question_bank_entries e ON e.id = r.questionbankentryid"
            " JOIN mdl_question_versions v ON v.questionbankentryid = e.id"
            " JOIN mdl_question qn ON qn.id = v.questionid"
            " WHERE q.course = :c AND qn.qtype = 'shortanswer' AND r.version IS NULL"
            " ORDER BY e.id LIMIT 1"
        ),
        {"c": course},
    ).one()
    return int(entry), int(category), int(owner)


def add_question_version(
    conn: sa.Connection, entry_id: int, editor_id: int, now: int, *, prefix: str = "mdl_"
) -> NewVersion:
    """What saving an edited question writes (question_type::save_question,
    Moodle 4.x): a new question row -- a new stamp, the edit, who and when --
    with its type's rows, answers and hints copied to it, and a new version
    of the question bank entry pointing at it.  The older versions stay, as
    do the quiz's references (to the entry, "always latest")."""
    site = _Site(conn, VERSION_TABLES, prefix)
    qv = site.table("question_versions")
    versions = site.rows("question_versions", qv.c.questionbankentryid == entry_id, order="version")
    latest = versions[-1]
    q = site.table("question")
    question = site.one("question", q.c.id == latest["questionid"])
    if question["qtype"] not in QTYPE_TABLES:
        raise ValueError(f"no copy of a {question['qtype']} question's own rows here")
    stamp = question["stamp"].split("+")[0] + f"+{now}+{secrets.token_urlsafe(4)}"
    new_id = site.insert(
        "question",
        question,
        stamp=stamp,
        questiontext=question["questiontext"] + "<p>Edited tonight.</p>",
        createdby=editor_id,
        modifiedby=editor_id,
        timecreated=now,
        timemodified=now,
    )
    for table, column in (
        ("question_answers", "question"),
        ("question_hints", "questionid"),
        *((t, "questionid") for t in QTYPE_TABLES[question["qtype"]]),
    ):
        for row in site.rows(table, site.table(table).c[column] == question["id"]):
            site.insert(table, row, **{column: new_id})
    version = int(latest["version"]) + 1
    version_id = site.insert(
        "question_versions", latest, questionid=new_id, version=version, status="ready"
    )
    return NewVersion(new_id, version_id, version)
