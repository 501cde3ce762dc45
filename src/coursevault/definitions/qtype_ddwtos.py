"""qtype_ddwtos (question/type/ddwtos/backup/moodle2/backup_qtype_ddwtos_plugin.class.php):
the choices as answers (each one's group and "infinite" serialised in its
feedback), then ``question_ddwtos``."""

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
    return qtype_part("ddwtos", question_answers(),
                      feedback_options("ddwtos", "question_ddwtos"))


PLUGIN = qtype_plugin("ddwtos", question, FEEDBACK_AREAS)
