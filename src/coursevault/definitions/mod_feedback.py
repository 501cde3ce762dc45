"""mod_feedback (``mod/feedback/backup/moodle2/backup_feedback_stepslib.php``,
Moodle 4.5): the feedback and its items; completed responses and their
values as user data (4.5 has no ``feedback_tracking`` any more)."""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.definitions.script_links import encode_script_links, index_view_rules
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table, Up
from coursevault.structure.registry import LinkContext, Plugin, Step

_RULES = [
    *index_view_rules("feedback", "FEEDBACKINDEX", "FEEDBACKVIEWBYID"),
    (r"(/mod/feedback/analysis.php\?id=)([0-9]+)", r"$@FEEDBACKANALYSISBYID*\g<2>@$"),
    (r"(/mod/feedback/show_entries.php\?id=)([0-9]+)", r"$@FEEDBACKSHOWENTRIESBYID*\g<2>@$"),
]


def feedback_structure(ctx: TaskContext) -> Nested:
    feedback = Nested(
        "feedback",
        attrs=("id",),
        fields=("name", "intro", "introformat", "anonymous", "email_notification",
                "multiple_submit", "autonumbering", "site_after_submit", "page_after_submit",
                "page_after_submitformat", "publish_stats", "timeopen", "timeclose",
                "timemodified", "completionsubmit"),
        source=Table("feedback", {"id": Param("activityid")}),
    )
    item = Nested(
        "item", attrs=("id",),
        fields=("template", "name", "label", "presentation", "typ", "hasvalue", "position",
                "required", "dependitem", "dependvalue", "options"),
        source=Table("feedback_item", {"feedback": Up("id")}),
    )
    item.annotate_files("mod_feedback", "item", "id")
    completed = Nested(
        "completed", attrs=("id",),
        fields=("userid", "timemodified", "random_response", "anonymous_response", "courseid"),
        source=Table("feedback_completed", {"feedback": Up("id")}), userinfo=True,
        annotate=[("user", "userid")],
    )
    value = Nested("value", attrs=("id",), fields=("item", "completed", "value", "course_id"),
                   source=Table("feedback_value", {"completed": Up("id")}), userinfo=True)
    completed.add(Nested("values", children=[value]))
    feedback.add(Nested("items", children=[item]), Nested("completeds", children=[completed]))
    feedback.annotate_files("mod_feedback", "intro", None)
    feedback.annotate_files("mod_feedback", "page_after_submit", None)
    return activity_structure(ctx, feedback)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_feedback_activity_task::encode_content_links``."""
    return encode_script_links(content, link, _RULES)


PLUGIN = Plugin(
    "feedback",
    steps=lambda ctx: [Step("feedback.xml", build=feedback_structure)],
    encode_links=encode_links,
)
