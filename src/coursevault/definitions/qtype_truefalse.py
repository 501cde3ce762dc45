"""qtype_truefalse (question/type/truefalse/backup/moodle2/backup_qtype_truefalse_plugin.class.php):
the two answers, then ``question_truefalse`` naming which is true."""

from __future__ import annotations

from coursevault.definitions.qtype_parts import options, qtype_part, qtype_plugin, question_answers
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested


def question(_ctx: TaskContext) -> Nested:
    return qtype_part("truefalse", question_answers(), options(
        "truefalse", "question_truefalse",
        ("trueanswer", "falseanswer", "showstandardinstruction"), key="question"))


PLUGIN = qtype_plugin("truefalse", question)
