"""What every question-using activity shares (``backup_questions_activity_structure_step``
in backup/moodle2/backup_stepslib.php, and ``backup_question_dbops`` in
backup/util/dbops/backup_question_dbops.class.php), for Moodle 4.5.

- :func:`add_question_references` / :func:`add_question_set_references`:
  the ``question_reference`` (a bank entry, a version or "latest") and
  ``question_set_reference`` (random questions: a filter condition, the
  JSON exactly as stored) an item of the activity uses;
- :func:`add_question_usages`: the question engine's record of attempts
  (usage, question attempts by slot, steps by sequence number, step data),
  annotating each attempt's question and each step's user and response
  files;
- :func:`calculate_question_categories` and :func:`delete_temp_questions`:
  the two execution steps Moodle runs after the activity's structure
  (``backup_calculate_question_categories``, ``backup_delete_temp_questions``),
  which turn the annotated questions into whole question banks.

A module using these is mod_quiz (definitions/mod_quiz.py); the question
bank itself is written by the final task (definitions/final_questions.py)
from the ``question_category`` annotations made here.
"""

from __future__ import annotations

from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table, Up

# question_engine::get_all_response_file_areas() on a stock 4.5 site: the
# qtypes' response_file_areas() joined with PHP's array "+" (a numeric key
# already there wins), prefixed "response_"; qtype_essay's ('attachments',
# 'answer') are the only core type's
RESPONSE_FILE_AREAS = ("response_attachments", "response_answer")


def add_question_references(element: Nested, component: str, questionarea: str) -> Nested:
    """``add_question_references``: the reference of the element's item
    (``itemid`` = the element's id) from this activity's context."""
    return element.add(Nested(
        "question_reference", attrs=("id",),
        fields=("usingcontextid", "component", "questionarea", "questionbankentryid",
                "version"),
        source=Table("question_references", {
            "usingcontextid": Param("contextid"), "component": component,
            "questionarea": questionarea, "itemid": Up("id")}),
    ))


def add_question_set_references(element: Nested, component: str, questionarea: str) -> Nested:
    """``add_question_set_references``: the random-question filter of the
    element's item; ``filtercondition`` is written as the database holds it
    (old ``questioncategoryid``/``tags`` JSON stays old)."""
    return element.add(Nested(
        "question_set_reference", attrs=("id",),
        fields=("usingcontextid", "component", "questionarea", "questionscontextid",
                "filtercondition"),
        source=Table("question_set_references", {
            "usingcontextid": Param("contextid"), "component": component,
            "questionarea": questionarea, "itemid": Up("id")}),
    ))


def add_question_usages(element: Nested, usageidname: str) -> Nested:
    """``add_question_usages``: the usage whose id is the element's
    ``usageidname`` field, its question attempts (``slot ASC``), their steps
    (``sequencenumber ASC``) and each step's response variables (database
    order).  Annotates ``question`` per attempt, ``user`` per step and the
    steps' response files."""
    variable = Nested("variable", fields=("name", "value"),
                      source=Table("question_attempt_step_data", {"attemptstepid": Up("id")}))
    step = Nested(
        "step", attrs=("id",), fields=("sequencenumber", "state", "fraction", "timecreated",
                                       "userid"),
        source=Table("question_attempt_steps", {"questionattemptid": Up("id")},
                     order="sequencenumber ASC"),
        annotate=[("user", "userid")],
        children=[Nested("response", children=[variable])],
    )
    for area in RESPONSE_FILE_AREAS:
        step.annotate_files("question", area, "id")
    attempt = Nested(
        "question_attempt", attrs=("id",),
        fields=("slot", "behaviour", "questionid", "variant", "maxmark", "minfraction",
                "maxfraction", "flagged", "questionsummary", "rightanswer", "responsesummary",
                "timemodified"),
        source=Table("question_attempts", {"questionusageid": Up("id")}, order="slot ASC"),
        annotate=[("question", "questionid")],
        children=[Nested("steps", children=[step])],
    )
    usage = Nested(
        "question_usage", attrs=("id",), fields=("component", "preferredbehaviour"),
        source=Table("question_usages", {"id": Up(usageidname)}),
        children=[Nested("question_attempts", children=[attempt])],
    )
    return element.add(usage)


def calculate_question_categories(ctx: TaskContext) -> None:
    """``backup_question_dbops::calculate_question_categories`` for the
    activity's context: every category of the context's own bank, then every
    category of each other context whose bank the activity draws on -- the
    contexts of the questions annotated so far, of its set references
    (random questions) and of its question references -- in the order
    Moodle's INSERT ... SELECTs put them into the temp table.  The activity
    task runs it whatever the ``questionbank`` setting (only the course
    task's is conditional)."""
    contextid = str(ctx.param("contextid"))
    reader = ctx.reader
    ctx.annotate("question_category", (r["id"] for r in reader.rows(
        "question_categories", {"contextid": contextid}, columns=("id",))))
    contexts: list[str] = []
    questions = ctx.ids.get("question")
    if questions:
        contexts += [str(r["contextid"]) for r in reader.sql(  # IN (?): one expanding bind
            "SELECT DISTINCT qc2.contextid FROM {question_categories} qc2"
            " JOIN {question_bank_entries} qbe ON qbe.questioncategoryid = qc2.id"
            " JOIN {question_versions} qv ON qv.questionbankentryid = qbe.id"
            " WHERE qv.questionid IN (?) AND qc2.contextid <> ?",
            [list(questions), contextid])]
    for sql in (
        "SELECT DISTINCT qc.contextid FROM {question_categories} qc"
        " JOIN {question_set_references} qsr ON qsr.questionscontextid = qc.contextid"
        " WHERE qsr.usingcontextid = ?",
        "SELECT DISTINCT qc.contextid FROM {question_categories} qc"
        " JOIN {question_bank_entries} qbe ON qbe.questioncategoryid = qc.id"
        " JOIN {question_references} qr ON qr.questionbankentryid = qbe.id"
        " WHERE qr.usingcontextid = ?",
    ):
        for row in reader.sql(sql, [contextid]):
            found = str(row["contextid"])
            if found not in contexts and found != contextid:
                contexts.append(found)
    if contexts:
        ctx.annotate("question_category", (r["id"] for r in reader.rows(
            "question_categories", {"contextid": contexts}, columns=("id",))))


def delete_temp_questions(ctx: TaskContext) -> None:
    """``backup_delete_temp_questions``: the ``question`` annotations served
    only to find the banks; Moodle deletes them from its temp table, so they
    never reach the final task."""
    ids = ctx.ids
    ids.items.pop("question", None)
    ids.order[:] = [pair for pair in ids.order if pair[0] != "question"]
