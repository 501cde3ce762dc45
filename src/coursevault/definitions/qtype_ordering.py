"""qtype_ordering (question/type/ordering/backup/moodle2/backup_qtype_ordering_plugin.class.php,
a core type since 4.4): the items as answers, then ``qtype_ordering_options``
in its table's column order (the 4.4 backup class lists them so)."""

from __future__ import annotations

from coursevault.definitions.qtype_parts import options, qtype_part, qtype_plugin, question_answers
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested


def question(_ctx: TaskContext) -> Nested:
    return qtype_part("ordering", question_answers(), options(
        "ordering", "qtype_ordering_options",
        ("layouttype", "selecttype", "selectcount", "gradingtype", "showgrading",
         "numberingstyle", "correctfeedback", "correctfeedbackformat", "incorrectfeedback",
         "incorrectfeedbackformat", "partiallycorrectfeedback",
         "partiallycorrectfeedbackformat", "shownumcorrect")))


PLUGIN = qtype_plugin("ordering", question)
