"""mod_page (``mod/page/backup/moodle2/backup_page_stepslib.php``): one
row, no user data; files of its intro and content areas."""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.definitions.preg import preg_replace, quoted_root
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table
from coursevault.structure.registry import LinkContext, Plugin, Step


def page_structure(ctx: TaskContext) -> Nested:
    """``backup_page_activity_structure_step::define_structure``."""
    page = Nested(
        "page",
        attrs=("id",),
        fields=(
            "name", "intro", "introformat", "content", "contentformat",
            "legacyfiles", "legacyfileslast", "display", "displayoptions",
            "revision", "timemodified",
        ),
        source=Table("page", {"id": Param("activityid")}),
    )
    page.annotate_files("mod_page", "intro", None)
    page.annotate_files("mod_page", "content", None)
    return activity_structure(ctx, page)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_page_activity_task::encode_content_links``."""
    base = quoted_root(link)
    content = preg_replace(rf"({base}\/mod\/page\/index.php\?id\=)([0-9]+)",
                           "$@PAGEINDEX*$2@$", content)
    return preg_replace(rf"({base}\/mod\/page\/view.php\?id\=)([0-9]+)",
                        "$@PAGEVIEWBYID*$2@$", content)


PLUGIN = Plugin(
    "page",
    steps=lambda ctx: [Step("page.xml", build=page_structure)],
    encode_links=encode_links,
)
