"""The question bank plugins that add to each question
(``add_plugin_structure('qbank', $question, true)`` in
``backup_questions_structure_step``): qbank_comment
(question/bank/comment/backup/moodle2/backup_qbank_comment_plugin.class.php)
and qbank_customfields
(question/bank/customfields/backup/moodle2/backup_qbank_customfields_plugin.class.php),
the only two of 4.5's qbank plugins with a backup class.  Neither has a
condition: every question gets both wrappers, empty or not, after its
type's part.  Registered under ``coursevault.backup.subplugins`` as
``qbank_<name>``, with ``extra["question"]`` building the part.
"""

from __future__ import annotations

from coursevault.definitions.final_annotations import system_context_id
from coursevault.moodledb.site import Row
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Rows, Table, Up
from coursevault.structure.engine import Instance
from coursevault.structure.registry import Plugin


def comment_question(ctx: TaskContext) -> Nested:
    """The question's comments: core comments in the *system* context
    (``context_system::instance()->id``, whatever bank the question is in),
    each annotating its author."""
    comment = Nested(
        "comment", attrs=("id",),
        fields=("component", "commentarea", "itemid", "contextid", "content", "format",
                "userid", "timecreated"),
        source=Table("comments", {"contextid": system_context_id(ctx),
                                  "component": "qbank_comment", "commentarea": "question",
                                  "itemid": Up("id")}),
        annotate=[("user", "userid")])
    return Nested("plugin_qbank_comment_question", children=[
        Nested("comments", children=[comment])])


_CUSTOMFIELDS_SQL = (
    "SELECT cfd.id, cff.shortname, cff.type, cfd.value, cfd.valueformat, cfd.valuetrust, "
    "cfd.instanceid FROM {customfield_data} cfd "
    "JOIN {customfield_field} cff ON cff.id = cfd.fieldid "
    "JOIN {customfield_category} cfc ON cfc.id = cff.categoryid "
    "JOIN {question_versions} qv ON qv.questionid = cfd.instanceid "
    "JOIN {question_bank_entries} qbe ON qbe.id = qv.questionbankentryid "
    "WHERE cfc.component = 'qbank_customfields' AND cfc.area = 'question' "
    "AND qbe.questioncategoryid = ?")


def _customfields(ctx: TaskContext, parent: Instance | None) -> list[Row]:
    """Moodle's query per question, made once per category: the values of
    every question of the category, handed out by question."""
    if parent is None:
        return []
    category = str(parent.value(Up("id", element="question_category")))
    memo: dict[str, dict[str, list[Row]]] = ctx.run.memo.setdefault("qbank_customfields", {})
    if category not in memo:
        by_question: dict[str, list[Row]] = {}
        for row in ctx.reader.sql(_CUSTOMFIELDS_SQL, [category]):
            by_question.setdefault(str(row["instanceid"]), []).append(row)
        memo[category] = by_question
    return memo[category].get(str(parent.value(Up("id"))), [])


def customfields_question(_ctx: TaskContext) -> Nested:
    """The question's custom field values (no ids or files to annotate)."""
    field = Nested("customfield", attrs=("id",),
                   fields=("shortname", "type", "value", "valueformat", "valuetrust"),
                   source=Rows(_customfields))
    return Nested("plugin_qbank_customfields_question", children=[
        Nested("customfields", children=[field])])


COMMENT = Plugin("qbank_comment", steps=lambda _ctx: [], extra={"question": comment_question})
CUSTOMFIELDS = Plugin("qbank_customfields", steps=lambda _ctx: [],
                      extra={"question": customfields_question})
