"""qtype_multianswer (question/type/multianswer/backup/moodle2/backup_qtype_multianswer_plugin.class.php):
the answers, then ``question_multianswer``, whose ``sequence`` lists the
embedded subquestions (questions of their own, with ``parent`` set, which
the question bank writes with their entries)."""

from __future__ import annotations

from coursevault.definitions.qtype_parts import options, qtype_part, qtype_plugin, question_answers
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested


def question(_ctx: TaskContext) -> Nested:
    return qtype_part("multianswer", question_answers(), options(
        "multianswer", "question_multianswer", ("question", "sequence"), key="question"))


PLUGIN = qtype_plugin("multianswer", question)
