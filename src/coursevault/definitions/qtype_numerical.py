"""qtype_numerical (question/type/numerical/backup/moodle2/backup_qtype_numerical_plugin.class.php):
the answers, units and options ``backup_qtype_plugin`` shares, then each
answer's tolerance (``question_numerical``)."""

from __future__ import annotations

from coursevault.definitions.qtype_parts import (
    numerical_options,
    numerical_units,
    qtype_part,
    qtype_plugin,
    question_answers,
)
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Table, Up


def question(_ctx: TaskContext) -> Nested:
    record = Nested("numerical_record", attrs=("id",), fields=("answer", "tolerance"),
                    source=Table("question_numerical", {"question": Up("id")}))
    return qtype_part("numerical", question_answers(), numerical_units(), numerical_options(),
                      Nested("numerical_records", children=[record]))


PLUGIN = qtype_plugin("numerical", question, ("instruction",))
