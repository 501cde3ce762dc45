"""mod_h5pactivity (``mod/h5pactivity/backup/moodle2/backup_h5pactivity_stepslib.php``,
Moodle 4.5): the activity, and its attempts with their xAPI results as user
data."""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.definitions.script_links import encode_script_links, index_view_rules
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table, Up
from coursevault.structure.registry import LinkContext, Plugin, Step

_RULES = index_view_rules("h5pactivity", "H5PACTIVITYINDEX", "H5PACTIVITYVIEWBYID")


def h5pactivity_structure(ctx: TaskContext) -> Nested:
    root = Nested(
        "h5pactivity",
        attrs=("id",),
        fields=("name", "timecreated", "timemodified", "intro", "introformat", "grade",
                "displayoptions", "enabletracking", "grademethod", "reviewmode"),
        source=Table("h5pactivity", {"id": Param("activityid")}),
    )
    attempt = Nested(
        "attempt",
        attrs=("id",),
        fields=("h5pactivityid", "userid", "timecreated", "timemodified", "attempt",
                "rawscore", "maxscore", "duration", "completion", "success", "scaled"),
        source=Table("h5pactivity_attempts", {"h5pactivityid": Up("id")}, order="id ASC"),
        userinfo=True,
        annotate=[("user", "userid")],
    )
    result = Nested(
        "result",
        attrs=("id",),
        fields=("attemptid", "subcontent", "timecreated", "interactiontype", "description",
                "correctpattern", "response", "additionals", "rawscore", "maxscore",
                "duration", "completion", "success"),
        source=Table("h5pactivity_attempts_results", {"attemptid": Up("id")}, order="id ASC"),
        userinfo=True,
    )
    attempt.add(Nested("results", children=[result]))
    root.add(Nested("attempts", children=[attempt]))
    root.annotate_files("mod_h5pactivity", "intro", None)
    root.annotate_files("mod_h5pactivity", "package", None)
    return activity_structure(ctx, root)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_h5pactivity_activity_task::encode_content_links``."""
    return encode_script_links(content, link, _RULES)


PLUGIN = Plugin(
    "h5pactivity",
    steps=lambda ctx: [Step("h5pactivity.xml", build=h5pactivity_structure)],
    encode_links=encode_links,
)
