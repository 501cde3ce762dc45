"""qtype_gapselect (question/type/gapselect/backup/moodle2/backup_qtype_gapselect_plugin.class.php):
the choices as answers (each one's group in its feedback), then
``question_gapselect``."""

from __future__ import annotations

from coursevault.definitions.qtype_parts import (
    FEEDBACK_AREAS,
    feedback_options,
    qtype_part,
    qtype_plugin,
    question_answers,
)
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested


def question(_ctx: TaskContext) -> Nested:
    return qtype_part("gapselect", question_answers(),
                      feedback_options("gapselect", "question_gapselect"))


PLUGIN = qtype_plugin("gapselect", question, FEEDBACK_AREAS)
