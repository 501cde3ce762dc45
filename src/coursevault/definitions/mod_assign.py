"""mod_assign (mod/assign/backup/moodle2/backup_assign_stepslib.php and
backup_assign_activity_task.class.php): the assignment, its plugin
configuration and overrides, and as user data its user flags, submissions
and grades, each submission and grade followed by what its subplugins
(``assignsubmission_*``, ``assignfeedback_*``: definitions/assign_subplugins.py)
add, in the subplugins' name order as Moodle's ``add_subplugin_structure``
finds them.

Annotations are declared in each element's field order (Moodle runs them
per final element, in field order).
"""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.definitions.links import encode_module_links
from coursevault.structure import registry
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Row, Rows, Table
from coursevault.structure.engine import Instance, table_rows
from coursevault.structure.registry import LinkContext, Plugin, Step

ASSIGN_FIELDS = (
    "name", "intro", "introformat", "alwaysshowdescription", "submissiondrafts",
    "sendnotifications", "sendlatenotifications", "sendstudentnotifications", "duedate",
    "cutoffdate", "gradingduedate", "allowsubmissionsfromdate", "grade", "timemodified",
    "completionsubmit", "requiresubmissionstatement", "teamsubmission",
    "requireallteammemberssubmit", "teamsubmissiongroupingid", "blindmarking", "hidegrader",
    "revealidentities", "attemptreopenmethod", "maxattempts", "markingworkflow",
    "markingallocation", "markinganonymous", "preventsubmissionnotingroup", "activity",
    "activityformat", "timelimit", "submissionattachments",
)


def assign_structure(ctx: TaskContext) -> Nested:
    """``backup_assign_activity_structure_step::define_structure``."""
    assign = Nested("assign", attrs=("id",), fields=ASSIGN_FIELDS,
                    source=Table("assign", {"id": Param("activityid")}),
                    annotate=[("grouping", "teamsubmissiongroupingid")])
    for area in ("intro", "introattachment", "activityattachment"):
        assign.annotate_files("mod_assign", area, None)
    userflag = Nested(
        "userflag", attrs=("id",),
        fields=("userid", "assignment", "mailed", "locked", "extensionduedate",
                "workflowstate", "allocatedmarker"),
        source=Table("assign_user_flags", {"assignment": Param("activityid")}), userinfo=True,
        annotate=[("user", "userid"), ("user", "allocatedmarker")],
    )
    submission = Nested(
        "submission", attrs=("id",),
        fields=("userid", "timecreated", "timemodified", "timestarted", "status", "groupid",
                "attemptnumber", "latest"),
        source=Table("assign_submission", {"assignment": Param("activityid")}), userinfo=True,
        annotate=[("user", "userid"), ("group", "groupid")],
    )
    _add_subplugins(ctx, submission, "assignsubmission_", "submission")
    grade = Nested(
        "grade", attrs=("id",),
        fields=("userid", "timecreated", "timemodified", "grader", "grade", "attemptnumber"),
        source=Table("assign_grades", {"assignment": Param("activityid")}), userinfo=True,
        annotate=[("user", "userid"), ("user", "grader")],
    )
    _add_subplugins(ctx, grade, "assignfeedback_", "grade")
    config = Nested(
        "plugin_config", attrs=("id",), fields=("plugin", "subtype", "name", "value"),
        source=Table("assign_plugin_config", {"assignment": Param("activityid")}),
    )
    override = Nested(
        "override", attrs=("id",),
        fields=("groupid", "userid", "sortorder", "allowsubmissionsfromdate", "duedate",
                "cutoffdate", "timelimit"),
        source=Rows(_override_rows),
        annotate=[("group", "groupid"), ("user", "userid")],
    )
    assign.add(
        Nested("userflags", children=[userflag]),
        Nested("submissions", children=[submission]),
        Nested("grades", children=[grade]),
        Nested("plugin_configs", children=[config]),
        Nested("overrides", children=[override]),
    )
    return activity_structure(ctx, assign)


def _add_subplugins(ctx: TaskContext, element: Nested, prefix: str, part: str) -> None:
    """``add_subplugin_structure(type, element, true)``: every subplugin of
    the type, by name, adds its part to ``element``."""
    found = registry.subplugins(prefix)
    for name in sorted(found):
        build = found[name].extra.get(part)
        if build is not None:
            element.add(build(ctx))


def _override_rows(ctx: TaskContext, _parent: Instance | None) -> list[Row]:
    """Overrides of the assignment; without user data, group overrides only
    (Moodle binds ``userid`` to NULL then)."""
    rows = table_rows(Table("assign_overrides", {"assignid": Param("activityid")}), ctx)
    if not ctx.users:
        rows = [r for r in rows if r.get("userid") is None]
    return rows


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_assign_activity_task::encode_content_links``."""
    return encode_module_links(content, link, "assign", index="ASSIGNINDEX",
                               view="ASSIGNVIEWBYID")


PLUGIN = Plugin(
    "assign",
    steps=lambda ctx: [Step("assign.xml", build=assign_structure)],
    encode_links=encode_links,
    extra={"advanced_grading": True},
)
