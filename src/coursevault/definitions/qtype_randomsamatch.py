"""qtype_randomsamatch (question/type/randomsamatch/backup/moodle2/backup_qtype_randomsamatch_plugin.class.php):
only ``qtype_randomsamatch_options``."""

from __future__ import annotations

from coursevault.definitions.qtype_parts import (
    COMBINED_FEEDBACK,
    FEEDBACK_AREAS,
    options,
    qtype_part,
    qtype_plugin,
)
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested


def question(_ctx: TaskContext) -> Nested:
    return qtype_part("randomsamatch", options(
        "randomsamatch", "qtype_randomsamatch_options",
        ("choose", "subcats", *COMBINED_FEEDBACK, "shownumcorrect")))


PLUGIN = qtype_plugin("randomsamatch", question, FEEDBACK_AREAS)
