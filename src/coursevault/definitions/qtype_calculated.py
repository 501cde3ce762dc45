"""qtype_calculated, qtype_calculatedsimple and qtype_calculatedmulti
(question/type/calculated/backup/moodle2/backup_qtype_calculated_plugin.class.php;
the other two extend it, keyed by their own name through
``$this->pluginname``): answers, numerical units and options, datasets,
then each answer's tolerance and formatting (``question_calculated``) and
the options (``question_calculated_options``, which Moodle writes without
its ``shownumcorrect``)."""

from __future__ import annotations

from coursevault.definitions.qtype_parts import (
    COMBINED_FEEDBACK,
    FEEDBACK_AREAS,
    QuestionPart,
    numerical_options,
    numerical_units,
    options,
    qtype_part,
    qtype_plugin,
    question_answers,
    question_datasets,
)
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested
from coursevault.structure.registry import Plugin

CALCULATED_AREAS = ("instruction", *FEEDBACK_AREAS)


def _part(qtype: str) -> QuestionPart:
    def question(_ctx: TaskContext) -> Nested:
        record = options("calculated_record", "question_calculated",
                         ("answer", "tolerance", "tolerancetype", "correctanswerlength",
                          "correctanswerformat"), key="question")
        option = options("calculated_option", "question_calculated_options",
                         ("synchronize", "single", "shuffleanswers", *COMBINED_FEEDBACK,
                          "answernumbering"), key="question")
        return qtype_part(qtype, question_answers(), numerical_units(), numerical_options(),
                          question_datasets(),
                          Nested("calculated_records", children=[record]),
                          Nested("calculated_options", children=[option]))

    return question


def _plugin(qtype: str) -> Plugin:
    return qtype_plugin(qtype, _part(qtype), CALCULATED_AREAS)


PLUGIN = _plugin("calculated")
SIMPLE = _plugin("calculatedsimple")
MULTI = _plugin("calculatedmulti")
