"""questions.xml: ``backup_questions_structure_step`` and
``backup_annotate_all_question_files`` (backup/moodle2/backup_stepslib.php).

The final question categories (the course's bank and the activities'), each
with its bank entries, versions and questions, hints, tags and competencies.
The question types' own parts (``add_plugin_structure('qtype', ...)``) are
the question bank issue's: a question here carries the core fields only, so
courses with questions do not match Moodle yet; courses whose categories
hold none do.
"""

from __future__ import annotations

from coursevault.definitions.final_annotations import final_ids, rows_by_ids
from coursevault.moodledb.site import Row
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Rows, Sql, Table, Up
from coursevault.structure.engine import Instance

QUESTION_AREAS = ("questiontext", "generalfeedback", "answer", "answerfeedback", "hint",
                  "correctfeedback", "partiallycorrectfeedback", "incorrectfeedback")


def question_categories(ctx: TaskContext) -> list[Row]:
    """The final categories.  Moodle's join with its temp table returns
    them by category id on every course of the reference site."""
    rows = rows_by_ids(
        ctx, "SELECT gc.*, contextlevel, instanceid AS contextinstanceid "
        "FROM {question_categories} gc JOIN {context} co ON co.id = gc.contextid "
        "WHERE gc.id IN", final_ids(ctx, "question_category"))
    return sorted(rows, key=lambda r: int(str(r["id"])))


def annotate_question_files(ctx: TaskContext) -> None:
    """``backup_annotate_all_question_files``: the core question areas of every
    context holding a final category, then all files of each question type's
    component there (``backup_qtype_plugin::get_components_and_fileareas``,
    approximated by the ``qtype_*`` components present, by name)."""
    contexts = dict.fromkeys(str(r["contextid"]) for r in question_categories(ctx))
    for contextid in contexts:
        for area in QUESTION_AREAS:
            ctx.annotate("file", ctx.run.files_of(contextid, "question", area))
        # every file of the question types' own components, all areas at once
        components = sorted({str(r["component"]) for r in ctx.reader.rows(
            "files", {"contextid": contextid}, columns=("component",))
            if str(r["component"]).startswith("qtype_")})
        for component in components:
            ctx.annotate("file", [str(r["id"]) for r in ctx.reader.rows(
                "files", {"contextid": contextid, "component": component}, columns=("id",))])


def questions_structure(ctx: TaskContext) -> Nested:
    def categories(c: TaskContext, _p: Instance | None) -> list[Row]:
        return question_categories(c)

    question = Nested(
        "question", attrs=("id",),
        fields=("parent", "name", "questiontext", "questiontextformat", "generalfeedback",
                "generalfeedbackformat", "defaultmark", "penalty", "qtype", "length", "stamp",
                "timecreated", "timemodified", "createdby", "modifiedby"),
        source=Sql("SELECT q.* FROM {question} q "
                   "JOIN {question_versions} qv ON qv.questionid = q.id WHERE qv.id = ?",
                   [Up("id")]),
        children=[
            Nested("question_hints", children=[Nested(
                "question_hint", attrs=("id",),
                fields=("hint", "hintformat", "shownumcorrect", "clearwrong", "options"),
                source=Table("question_hints", {"questionid": Up("id")}, order="id"))]),
            Nested("tags", children=[Nested(
                "tag", attrs=("id", "contextid"), fields=("name", "rawname"),
                source=Sql("SELECT t.id, ti.contextid, t.name, t.rawname FROM {tag} t "
                           "JOIN {tag_instance} ti ON ti.tagid = t.id WHERE ti.itemid = ? "
                           "AND ti.itemtype = 'question' AND ti.component = 'core_question'",
                           [Up("id")]))]),
        ],
    )
    version = Nested(
        "question_versions", attrs=("id",), fields=("version", "status"),
        source=Table("question_versions", {"questionbankentryid": Up("id")}),
        children=[Nested("questions", children=[question])])
    entry = Nested(
        "question_bank_entry", attrs=("id",), fields=("questioncategoryid", "idnumber", "ownerid"),
        source=Table("question_bank_entries", {"questioncategoryid": Up("id")}),
        children=[Nested("question_version", children=[version])])
    category = Nested(
        "question_category", attrs=("id",),
        fields=("name", "contextid", "contextlevel", "contextinstanceid", "info", "infoformat",
                "stamp", "parent", "sortorder", "idnumber"),
        source=Rows(categories),
        children=[Nested("question_bank_entries", children=[entry])])
    return Nested("question_categories", children=[category])
