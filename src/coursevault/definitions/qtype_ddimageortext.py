"""qtype_ddimageortext (question/type/ddimageortext/backup/moodle2/backup_qtype_ddimageortext_plugin.class.php):
the options row, then the drag items and the drop zones, each in the
database's order; the background and drag images are files of its own
component."""

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
    drag = options("drag", "qtype_ddimageortext_drags", ("no", "draggroup", "infinite", "label"))
    drop = options("drop", "qtype_ddimageortext_drops", ("no", "xleft", "ytop", "choice", "label"))
    return qtype_part("ddimageortext", feedback_options("ddimageortext", "qtype_ddimageortext"),
                      Nested("drags", children=[drag]), Nested("drops", children=[drop]))


PLUGIN = qtype_plugin("ddimageortext", question, (*FEEDBACK_AREAS, "bgimage", "dragimage"))
