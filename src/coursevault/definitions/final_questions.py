"""questions.xml: ``backup_questions_structure_step`` and
``backup_annotate_all_question_files`` (backup/moodle2/backup_stepslib.php).

The final question categories (the course's bank and the activities'), each
with its bank entries, versions and questions, hints, tags and competencies.
Under each question, as Moodle adds them: its question type's part
(``add_plugin_structure('qtype', $question, false)``: the ``qtype_*``
definitions, definitions/qtype_parts.py), then every question bank
plugin's (``add_plugin_structure('qbank', $question, true)``:
definitions/qbank_plugins.py), then hints and tags.  A question of a type
the site lacks (restored stack or coderunner questions) gets no type part,
as Moodle writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from coursevault.definitions.final_annotations import final_ids, rows_by_ids
from coursevault.definitions.subplugins import add_subplugin_structure
from coursevault.definitions.tags import tags_enabled
from coursevault.moodledb.site import Row
from coursevault.structure import registry
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import NO_ROWS, Nested, Rows, Sql, Table, Up
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


def qtype_file_components() -> list[str]:
    """``backup_qtype_plugin::get_components_and_fileareas()``: the installed
    question types (in plugin name order) whose backup class names file
    areas of their own."""
    return [name for name, plugin in sorted(registry.subplugins("qtype_").items())
            if plugin.extra.get("fileareas")]


def annotate_question_files(ctx: TaskContext) -> None:
    """``backup_annotate_all_question_files``: the core question areas of every
    context holding a final category, then all files of each question type's
    component there (its areas all at once, as Moodle passes a null area)."""
    contexts = dict.fromkeys(str(r["contextid"]) for r in question_categories(ctx))
    for contextid in contexts:
        for area in QUESTION_AREAS:
            ctx.annotate("file", ctx.run.files_of(contextid, "question", area))
        # Moodle asks for every type; only those with files here can add any
        present = {str(r["component"]) for r in ctx.reader.rows(
            "files", {"contextid": contextid}, columns=("component",))}
        for component in (c for c in qtype_file_components() if c in present):
            ctx.annotate("file", [str(r["id"]) for r in ctx.reader.rows(
                "files", {"contextid": contextid, "component": component}, columns=("id",))])


def _question_tag(ctx: TaskContext) -> Nested:
    """A question's tags, read only when the area's tags are enabled
    (``core_tag_tag::is_enabled('core_question', 'question')``).  Moodle's
    query per question is kept: a question's tags come in its join's order."""
    tag = Nested("tag", attrs=("id", "contextid"), fields=("name", "rawname"))
    if tags_enabled(ctx, "core_question", "question"):
        tag.set_source(Sql(
            "SELECT t.id, ti.contextid, t.name, t.rawname FROM {tag} t "
            "JOIN {tag_instance} ti ON ti.tagid = t.id WHERE ti.itemid = ? "
            "AND ti.itemtype = 'question' AND ti.component = 'core_question'", [Up("id")]))
    else:  # Moodle's element without a source is written no times
        tag.set_source(NO_ROWS)
    return tag


def questions_structure(ctx: TaskContext) -> Nested:
    """questions.xml: the final categories, each with its bank entries, their
    versions and each version's question with its parts.  A course whose
    bank is empty writes the wrapper alone, without asking -- and importing
    -- every question type for its part."""
    found = question_categories(ctx)  # the step renders this tree right away
    return questions_tree(ctx, lambda _c, _p: found, parts=bool(found))


def questions_tree(ctx: TaskContext,
                   categories: Callable[[TaskContext, Instance | None], Iterable[Row]], *,
                   parts: bool) -> Nested:
    """The tree of questions.xml with its categories' source; ``parts``: with
    every question type's and bank plugin's part (a restore reads any)."""
    question = Nested(
        "question", attrs=("id",),
        fields=("parent", "name", "questiontext", "questiontextformat", "generalfeedback",
                "generalfeedbackformat", "defaultmark", "penalty", "qtype", "length", "stamp",
                "timecreated", "timemodified", "createdby", "modifiedby"),
        source=Table("question", {"id": Up("questionid")}))
    if parts:
        add_subplugin_structure(ctx, "qtype", question)
        add_subplugin_structure(ctx, "qbank", question)
    question.add(
        Nested("question_hints", children=[Nested(
            "question_hint", attrs=("id",),
            fields=("hint", "hintformat", "shownumcorrect", "clearwrong", "options"),
            source=Table("question_hints", {"questionid": Up("id")}, order="id"))]),
        Nested("tags", children=[_question_tag(ctx)]),
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
