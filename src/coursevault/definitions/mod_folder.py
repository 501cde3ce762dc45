"""mod_folder (``mod/folder/backup/moodle2/backup_folder_stepslib.php``):
one row, no user data; the files of its intro and content areas."""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.definitions.preg import preg_replace, quoted_root
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table
from coursevault.structure.registry import LinkContext, Plugin, Step


def folder_structure(ctx: TaskContext) -> Nested:
    """``backup_folder_activity_structure_step::define_structure`` (4.5:
    ``showdownloadfolder`` and ``forcedownload`` after ``showexpanded``)."""
    folder = Nested(
        "folder",
        attrs=("id",),
        fields=(
            "name", "intro", "introformat", "revision", "timemodified",
            "display", "showexpanded", "showdownloadfolder", "forcedownload",
        ),
        source=Table("folder", {"id": Param("activityid")}),
    )
    folder.annotate_files("mod_folder", "intro", None)
    folder.annotate_files("mod_folder", "content", None)
    return activity_structure(ctx, folder)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_folder_activity_task::encode_content_links``."""
    base = quoted_root(link)
    content = preg_replace(rf"({base}\/mod\/folder\/index.php\?id\=)([0-9]+)",
                           "$@FOLDERINDEX*$2@$", content)
    return preg_replace(rf"({base}\/mod\/folder\/view.php\?id\=)([0-9]+)",
                        "$@FOLDERVIEWBYID*$2@$", content)


PLUGIN = Plugin(
    "folder",
    steps=lambda ctx: [Step("folder.xml", build=folder_structure)],
    encode_links=encode_links,
)
