"""qtype_ddmarker (question/type/ddmarker/backup/moodle2/backup_qtype_ddmarker_plugin.class.php):
the options row (with ``showmisplaced``), then the markers and the drop
zones, each in the database's order."""

from __future__ import annotations

from coursevault.definitions.qtype_parts import (
    FEEDBACK_AREAS,
    feedback_options,
    options,
    qtype_part,
    qtype_plugin,
)
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested


def question(_ctx: TaskContext) -> Nested:
    drag = options("drag", "qtype_ddmarker_drags", ("no", "label", "infinite", "noofdrags"))
    drop = options("drop", "qtype_ddmarker_drops", ("no", "shape", "coords", "choice"))
    return qtype_part("ddmarker",
                      feedback_options("ddmarker", "qtype_ddmarker", ("showmisplaced",)),
                      Nested("drags", children=[drag]), Nested("drops", children=[drop]))


PLUGIN = qtype_plugin("ddmarker", question, (*FEEDBACK_AREAS, "bgimage"))
