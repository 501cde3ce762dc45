"""mod_quiz (mod/quiz/backup/moodle2/backup_quiz_stepslib.php and
backup_quiz_activity_task.class.php, Moodle 4.5).

quiz.xml: the quiz's settings with its access rules' parts
(``quizaccess_*`` subplugins), grade items, slots (``question_instance``)
with the question reference or random-question set reference each holds,
sections, overall feedback, overrides (user overrides only with user data,
group overrides only with groups) and, as user data, best grades and
attempts with their question usages (definitions/question_usages.py).

After quiz.xml the task runs two execution steps, which is why the member
is written by :func:`quiz_member` rather than declared: the questions the
attempts annotated, with the quiz's references, decide which question banks
(``question_category`` annotations) go into questions.xml, and then the
``question`` annotations are dropped.  Both must come after quiz.xml's own
annotations and before roles.xml's, the order Moodle's temp table
receives them in.
"""

from __future__ import annotations

from coursevault.definitions import restore_quiz
from coursevault.definitions.common import activity_structure
from coursevault.definitions.links import encode_patterns
from coursevault.definitions.question_usages import (
    add_question_references,
    add_question_set_references,
    add_question_usages,
    calculate_question_categories,
    delete_temp_questions,
)
from coursevault.definitions.subplugins import add_subplugin_structure
from coursevault.moodle2.xmlwriter import Transformer
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Sql, Table, Up
from coursevault.structure.engine import render
from coursevault.structure.registry import LinkContext, Plugin, Step

# backup_quiz_activity_structure_step's quiz fields as Moodle 4.5 writes
# them (5.x adds precreateattempts); attempts_number is the column attempts
QUIZ_FIELDS = (
    "name", "intro", "introformat", "timeopen", "timeclose", "timelimit", "overduehandling",
    "graceperiod", "preferredbehaviour", "canredoquestions", "attempts_number",
    "attemptonlast", "grademethod", "decimalpoints", "questiondecimalpoints",
    "reviewattempt", "reviewcorrectness", "reviewmaxmarks", "reviewmarks",
    "reviewspecificfeedback", "reviewgeneralfeedback", "reviewrightanswer",
    "reviewoverallfeedback", "questionsperpage", "navmethod", "shuffleanswers", "sumgrades",
    "grade", "timecreated", "timemodified", "password", "subnet", "browsersecurity",
    "delay1", "delay2", "showuserpicture", "showblocks", "completionattemptsexhausted",
    "completionminattempts", "allowofflineattempts",
)
ATTEMPT_FIELDS = (
    "userid", "attemptnum", "uniqueid", "layout", "currentpage", "preview", "state",
    "timestart", "timefinish", "timemodified", "timemodifiedoffline", "timecheckstate",
    "sumgrades", "gradednotificationsenttime",
)


def quiz_structure(ctx: TaskContext) -> Nested:
    """``backup_quiz_activity_structure_step::define_structure``."""
    quiz = Nested("quiz", attrs=("id",), fields=QUIZ_FIELDS,
                  source=Table("quiz", {"id": Param("activityid")}),
                  compute={"attempts_number": lambda row, _ctx: row["attempts"]})
    quiz.annotate_files("mod_quiz", "intro", None)
    add_subplugin_structure(ctx, "quizaccess", quiz)
    slot = Nested(
        "question_instance", attrs=("id",),
        fields=("quizid", "slot", "page", "displaynumber", "requireprevious", "maxmark",
                "quizgradeitemid"),
        source=Table("quiz_slots", {"quizid": Up("id")}))
    add_question_references(slot, "mod_quiz", "slot")
    add_question_set_references(slot, "mod_quiz", "slot")
    feedback = Nested(
        "feedback", attrs=("id",),
        fields=("feedbacktext", "feedbacktextformat", "mingrade", "maxgrade"),
        source=Table("quiz_feedback", {"quizid": Up("id")}))
    feedback.annotate_files("mod_quiz", "feedback", "id")
    quiz.add(
        Nested("quiz_grade_items", children=[Nested(
            "quiz_grade_item", attrs=("id",), fields=("sortorder", "name"),
            source=Table("quiz_grade_items", {"quizid": Up("id")}))]),
        Nested("question_instances", children=[slot]),
        Nested("sections", children=[Nested(
            "section", attrs=("id",), fields=("firstslot", "heading", "shufflequestions"),
            source=Table("quiz_sections", {"quizid": Up("id")}))]),
        Nested("feedbacks", children=[feedback]),
        Nested("overrides", children=[_override(ctx)]),
        Nested("grades", children=[Nested(
            "grade", attrs=("id",), fields=("userid", "gradeval", "timemodified"),
            source=Table("quiz_grades", {"quiz": Up("id")}), userinfo=True,
            compute={"gradeval": lambda row, _ctx: row["grade"]},
            annotate=[("user", "userid")])]),
        Nested("attempts", children=[_attempt(ctx)]),
    )
    return activity_structure(ctx, quiz)


def _override(ctx: TaskContext) -> Nested:
    """Overrides: without user data no user overrides, without groups no
    group overrides (``backup_helper::is_sqlparam(null)`` conditions)."""
    conditions = ["quiz = ?"]
    if not ctx.users:
        conditions.append("userid IS NULL")
    if not ctx.run.setting("groups"):
        conditions.append("groupid IS NULL")
    return Nested(
        "override", attrs=("id",),
        fields=("userid", "groupid", "timeopen", "timeclose", "timelimit", "attempts",
                "password"),
        source=Sql("SELECT * FROM {quiz_overrides} WHERE " + " AND ".join(conditions),
                   [Up("id")]),
        annotate=[("user", "userid"), ("group", "groupid")],
        user_rows=lambda values: values.get("userid") not in (None, "", "$@NULL@$"))


def _attempt(ctx: TaskContext) -> Nested:
    """Attempts but previews, each with its question usage, then the access
    rules' attempt parts."""
    attempt = Nested(
        "attempt", attrs=("id",), fields=ATTEMPT_FIELDS,
        source=Sql("SELECT * FROM {quiz_attempts} WHERE quiz = ? AND preview = 0",
                   [Up("id")]),
        userinfo=True,
        compute={"attemptnum": lambda row, _ctx: row["attempt"]},
        annotate=[("user", "userid")])
    add_question_usages(attempt, "uniqueid")
    return add_subplugin_structure(ctx, "quizaccess", attempt)


def quiz_member(ctx: TaskContext) -> bytes:
    """quiz.xml, then ``backup_calculate_question_categories`` and
    ``backup_delete_temp_questions``.  Rendered here with the run's content
    transformer (definitions/run.py), as the plan renders declared members."""
    data = render(quiz_structure(ctx), ctx, transform=_transformer(ctx))
    calculate_question_categories(ctx)
    delete_temp_questions(ctx)
    return data


def _transformer(ctx: TaskContext) -> Transformer:
    memo = ctx.run.memo
    if "quiz_transformer" not in memo:
        from coursevault.definitions.run import transformer

        memo["quiz_transformer"] = transformer(ctx.run)
    found: Transformer = memo["quiz_transformer"]
    return found


_QUIZ_LINKS = (
    (r"/mod/quiz/index\.php\?id=([0-9]+)", r"$@QUIZINDEX*\1@$"),
    (r"/mod/quiz/view\.php\?id=([0-9]+)", r"$@QUIZVIEWBYID*\1@$"),
    (r"/mod/quiz/view\.php\?q=([0-9]+)", r"$@QUIZVIEWBYQ*\1@$"),
)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_quiz_activity_task::encode_content_links``, in its order."""
    return encode_patterns(content, link, _QUIZ_LINKS)


PLUGIN = Plugin(
    "quiz",
    steps=lambda ctx: [Step("quiz.xml", write=quiz_member)],
    encode_links=encode_links,
    # restore reads quiz.xml against the tree quiz_member renders
    extra={"restore_trees": {"quiz.xml": quiz_structure},
           "restore_refs": restore_quiz.REFS, "restore_hooks": restore_quiz.HOOKS},
)
