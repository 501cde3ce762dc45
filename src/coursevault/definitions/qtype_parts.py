"""What the question types share (backup/moodle2/backup_qtype_plugin.class.php).

questions.xml hands each ``<question>`` to every installed question type
(``add_plugin_structure('qtype', $question, false)``); each type's
``backup_qtype_<name>_plugin`` hangs a ``plugin_qtype_<name>_question``
wrapper under it on the condition ``../../qtype == <name>``, so a question
gets its own type's part and no other.  A question type here is a
:class:`~coursevault.structure.registry.Plugin` registered under
``coursevault.backup.subplugins`` as ``qtype_<name>``, whose ``extra`` maps
``"question"`` to ``fn(ctx) -> Nested`` (the wrapper, built with
:func:`qtype_part`) and ``"fileareas"`` to the areas its
``get_qtype_fileareas`` names (what ``backup_annotate_all_question_files``
asks of it).  A type Moodle gives no backup class (description, random)
is registered without a part: its questions carry core fields only.

The shared pieces are ``backup_qtype_plugin``'s helpers: the answers
(``add_question_question_answers``), numerical units and options, and the
calculated types' datasets.  Each reads its rows in the order Moodle's SQL
asks (answers and units by id) or the database's (options, datasets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Row, Rows, Sql, Table, Up
from coursevault.structure.engine import Instance
from coursevault.structure.registry import Plugin

QuestionPart = Callable[[TaskContext], Nested]

# the combined feedback of question_type::save_combined_feedback_helper, as
# the options elements of ddwtos, gapselect, match... list it
COMBINED_FEEDBACK = ("correctfeedback", "correctfeedbackformat",
                     "partiallycorrectfeedback", "partiallycorrectfeedbackformat",
                     "incorrectfeedback", "incorrectfeedbackformat")
# the fileareas of the types storing combined feedback in their own component
FEEDBACK_AREAS = ("correctfeedback", "partiallycorrectfeedback", "incorrectfeedback")


def _of_type(qtype: str) -> Callable[[TaskContext, Instance | None], Iterable[Row]]:
    """The plugin element's condition: one (empty) row under a question of
    ``qtype``, none under any other.  The row holds no ``id``, so the
    children's ``Up("id")`` reach the question's."""

    def rows(_ctx: TaskContext, parent: Instance | None) -> list[Row]:
        return [{}] if parent is not None and parent.row.get("qtype") == qtype else []

    return rows


def qtype_part(qtype: str, *children: Nested) -> Nested:
    """``plugin_qtype_<qtype>_question`` (``get_recommended_name``) under the
    questions of ``qtype`` (``get_plugin_element(null, '../../qtype', $qtype)``)."""
    return Nested(f"plugin_qtype_{qtype}_question", source=Rows(_of_type(qtype)),
                  children=children)


def qtype_plugin(name: str, part: QuestionPart | None, fileareas: Sequence[str] = ()) -> Plugin:
    """A question type's definition: its part of ``<question>`` (None: Moodle
    has no backup class for it) and its ``get_qtype_fileareas``."""
    extra: dict[str, object] = {"fileareas": tuple(fileareas)}
    if part is not None:
        extra["question"] = part
    return Plugin(f"qtype_{name}", steps=lambda _ctx: [], extra=extra)


def question_answers() -> Nested:
    """``add_question_question_answers``: ``question_answers`` by id, the
    ``answer`` column aliased to ``answertext``."""
    return Nested("answers", children=[Nested(
        "answer", attrs=("id",),
        fields=("answertext", "answerformat", "fraction", "feedback", "feedbackformat"),
        source=Table("question_answers", {"question": Up("id")}, order="id"),
        compute={"answertext": lambda row, _ctx: row.get("answer")})])


def numerical_units() -> Nested:
    """``add_question_numerical_units``: the units by id."""
    return Nested("numerical_units", children=[Nested(
        "numerical_unit", attrs=("id",), fields=("multiplier", "unit"),
        source=Table("question_numerical_units", {"question": Up("id")}, order="id"))])


def numerical_options() -> Nested:
    """``add_question_numerical_options`` (4.5 dropped the instructions)."""
    return Nested("numerical_options", children=[Nested(
        "numerical_option", attrs=("id",),
        fields=("showunits", "unitsleft", "unitgradingtype", "unitpenalty"),
        source=Table("question_numerical_options", {"question": Up("id")}))])


def question_datasets() -> Nested:
    """``add_question_datasets``: the dataset definitions a question uses
    (shared ones live in a category), each with its items; ``itemnumber``
    is aliased to ``number``."""
    item = Nested(
        "dataset_item", attrs=("id",), fields=("number", "value"),
        source=Table("question_dataset_items", {"definition": Up("id")}),
        compute={"number": lambda row, _ctx: row.get("itemnumber")})
    definition = Nested(
        "dataset_definition", attrs=("id",),
        fields=("category", "name", "type", "options", "itemcount"),
        source=Sql("SELECT qdd.* FROM {question_dataset_definitions} qdd "
                   "JOIN {question_datasets} qd ON qd.datasetdefinition = qdd.id "
                   "WHERE qd.question = ?", [Up("id")]),
        children=[Nested("dataset_items", children=[item])])
    return Nested("dataset_definitions", children=[definition])


def options(element: str, table: str, fields: Sequence[str], key: str = "questionid") -> Nested:
    """A type's own options row (``set_source_table($table, [$key =>
    backup::VAR_PARENTID])``)."""
    return Nested(element, attrs=("id",), fields=fields,
                  source=Table(table, {key: Up("id")}))


def feedback_options(element: str, table: str, extra: Sequence[str] = ()) -> Nested:
    """The options of the drag-and-drop and gap types: shuffling, the
    combined feedback and ``shownumcorrect`` (then ``extra``)."""
    return options(element, table, ("shuffleanswers", *COMBINED_FEEDBACK, "shownumcorrect",
                                    *extra))
