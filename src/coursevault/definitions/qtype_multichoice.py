"""qtype_multichoice (question/type/multichoice/backup/moodle2/backup_qtype_multichoice_plugin.class.php):
the answers, then the options row of ``qtype_multichoice_options``."""

from __future__ import annotations

from coursevault.definitions.qtype_parts import (
    COMBINED_FEEDBACK,
    FEEDBACK_AREAS,
    options,
    qtype_part,
    qtype_plugin,
    question_answers,
)
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested


def question(_ctx: TaskContext) -> Nested:
    return qtype_part("multichoice", question_answers(), options(
        "multichoice", "qtype_multichoice_options",
        ("layout", "single", "shuffleanswers", *COMBINED_FEEDBACK, "answernumbering",
         "shownumcorrect", "showstandardinstruction")))


PLUGIN = qtype_plugin("multichoice", question, FEEDBACK_AREAS)
