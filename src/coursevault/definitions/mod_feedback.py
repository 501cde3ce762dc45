"""mod_feedback (``mod/feedback/backup/moodle2/backup_feedback_stepslib.php``,
Moodle 4.5): the feedback and its items; completed responses and their
values as user data (4.5 has no ``feedback_tracking`` any more)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coursevault.definitions.common import activity_structure
from coursevault.definitions.script_links import encode_script_links, index_view_rules
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table, Up
from coursevault.structure.registry import LinkContext, Plugin, Step

if TYPE_CHECKING:
    from coursevault.structure.restore_engine import RestoreContext
    from coursevault.structure.reverse import Record

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


def _keep_course(rc: RestoreContext, rec: Record, row: dict[str, Any], column: str) -> bool:
    """``process_feedback_completed``/``_value``: a response's course (a
    feedback on the front page records which course it was answered from)
    is kept when restoring into the same site, else none (0)."""
    old = str(rec.values.get(column) or "0")
    row[column] = int(old) if rc.params.get("samesite") and old.isdigit() else 0
    return True


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_feedback_activity_task::encode_content_links``."""
    return encode_script_links(content, link, _RULES)


PLUGIN = Plugin(
    "feedback",
    steps=lambda ctx: [Step("feedback.xml", build=feedback_structure)],
    encode_links=encode_links,
    extra={"restore_hooks": {"completed": lambda rc, rec, row: _keep_course(rc, rec, row, "courseid"),
                             "value": lambda rc, rec, row: _keep_course(rc, rec, row, "course_id")}},
)
