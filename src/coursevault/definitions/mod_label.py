"""mod_label (``mod/label/backup/moodle2/backup_label_stepslib.php``): one
row and its intro files.  Labels encode no links of their own
(``backup_label_activity_task::encode_content_links`` returns the content)."""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table
from coursevault.structure.registry import Plugin, Step


def label_structure(ctx: TaskContext) -> Nested:
    """``backup_label_activity_structure_step::define_structure``."""
    label = Nested(
        "label",
        attrs=("id",),
        fields=("name", "intro", "introformat", "timemodified"),
        source=Table("label", {"id": Param("activityid")}),
    )
    label.annotate_files("mod_label", "intro", None)
    return activity_structure(ctx, label)


PLUGIN = Plugin(
    "label",
    steps=lambda ctx: [Step("label.xml", build=label_structure)],
)
