"""qtype_match (question/type/match/backup/moodle2/backup_qtype_match_plugin.class.php):
``matchoptions`` (``qtype_match_options``), then the subquestions by id."""

from __future__ import annotations

from coursevault.definitions.qtype_parts import (
    FEEDBACK_AREAS,
    feedback_options,
    qtype_part,
    qtype_plugin,
)
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Table, Up


def question(_ctx: TaskContext) -> Nested:
    match = Nested("match", attrs=("id",),
                   fields=("questiontext", "questiontextformat", "answertext"),
                   source=Table("qtype_match_subquestions", {"questionid": Up("id")},
                                order="id"))
    return qtype_part("match", feedback_options("matchoptions", "qtype_match_options"),
                      Nested("matches", children=[match]))


PLUGIN = qtype_plugin("match", question, ("subquestion", *FEEDBACK_AREAS))
