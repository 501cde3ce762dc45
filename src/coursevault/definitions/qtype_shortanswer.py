"""qtype_shortanswer (question/type/shortanswer/backup/moodle2/backup_qtype_shortanswer_plugin.class.php):
the answers, then ``qtype_shortanswer_options``."""

from __future__ import annotations

from coursevault.definitions.qtype_parts import options, qtype_part, qtype_plugin, question_answers
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested


def question(_ctx: TaskContext) -> Nested:
    return qtype_part("shortanswer", question_answers(),
                      options("shortanswer", "qtype_shortanswer_options", ("usecase",)))


PLUGIN = qtype_plugin("shortanswer", question)
