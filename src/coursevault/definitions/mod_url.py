"""mod_url (``mod/url/backup/moodle2/backup_url_stepslib.php``): one row,
no user data, intro files."""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.definitions.preg import preg_replace, quoted_root
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table
from coursevault.structure.registry import LinkContext, Plugin, Step


def url_structure(ctx: TaskContext) -> Nested:
    """``backup_url_activity_structure_step::define_structure``."""
    url = Nested(
        "url",
        attrs=("id",),
        fields=(
            "name", "intro", "introformat", "externalurl",
            "display", "displayoptions", "parameters", "timemodified",
        ),
        source=Table("url", {"id": Param("activityid")}),
    )
    url.annotate_files("mod_url", "intro", None)
    return activity_structure(ctx, url)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_url_activity_task::encode_content_links``: its patterns
    quote ``wwwroot/mod/url`` for ``#`` delimiters and escape the dots."""
    base = quoted_root(link) + "/mod/url"
    content = preg_replace(rf"({base}/index\.php\?id=)([0-9]+)", "$@URLINDEX*$2@$", content)
    content = preg_replace(rf"({base}/view\.php\?id=)([0-9]+)", "$@URLVIEWBYID*$2@$", content)
    return preg_replace(rf"({base}/view\.php\?u=)([0-9]+)", "$@URLVIEWBYU*$2@$", content)


PLUGIN = Plugin(
    "url",
    steps=lambda ctx: [Step("url.xml", build=url_structure)],
    encode_links=encode_links,
)
