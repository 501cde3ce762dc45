"""mod_imscp (``mod/imscp/backup/moodle2/backup_imscp_stepslib.php``): one
row, no user data; intro files, the uploaded package (``backup`` area) and
every revision of its unpacked content (``content``, annotated for all
items: Moodle ignores the revision kept in the itemid)."""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.definitions.preg import preg_replace, quoted_root
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table
from coursevault.structure.registry import LinkContext, Plugin, Step


def imscp_structure(ctx: TaskContext) -> Nested:
    """``backup_imscp_activity_structure_step::define_structure``."""
    imscp = Nested(
        "imscp",
        attrs=("id",),
        fields=(
            "name", "intro", "introformat", "revision",
            "keepold", "structure", "timemodified",
        ),
        source=Table("imscp", {"id": Param("activityid")}),
    )
    imscp.annotate_files("mod_imscp", "intro", None)
    imscp.annotate_files("mod_imscp", "backup", None)
    imscp.annotate_files("mod_imscp", "content", None)
    return activity_structure(ctx, imscp)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_imscp_activity_task::encode_content_links``."""
    base = quoted_root(link)
    content = preg_replace(rf"({base}\/mod\/imscp\/index.php\?id\=)([0-9]+)",
                           "$@IMSCPINDEX*$2@$", content)
    return preg_replace(rf"({base}\/mod\/imscp\/view.php\?id\=)([0-9]+)",
                        "$@IMSCPVIEWBYID*$2@$", content)


PLUGIN = Plugin(
    "imscp",
    steps=lambda ctx: [Step("imscp.xml", build=imscp_structure)],
    encode_links=encode_links,
)
