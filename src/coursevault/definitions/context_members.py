"""Members every context's task writes: roles.xml, comments.xml and
inforef.xml (``backup_roles_structure_step``, ``backup_comments_structure_step``
and ``backup_inforef_structure_step`` in backup/moodle2/backup_stepslib.php).

The course task, the block tasks and the activity tasks all write these for
their own context (``contextid`` of the task), so they live here once.
"""

from __future__ import annotations

from coursevault.moodle2.xmlwriter import XmlWriter
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table
from coursevault.structure.registry import Step

# backup_helper::get_inforef_itemnames(): the item types an inforef lists, in order
# run.memo key: annotations made after a task's inforef was written, which
# Moodle's next inforef lists (they are still in backup_ids_temp unmoved)
PENDING_INFOREF = "inforef_pending"
INFOREF_ITEMS = ("user", "grouping", "group", "role", "file", "scale", "outcome",
                 "grade_item", "question_category")
def roles_structure(ctx: TaskContext) -> Nested:
    """roles.xml: the context's role overrides always, its role assignments
    when the ``role_assignments`` setting is on; both in the database's
    order, annotating roles and users."""
    override = Nested(
        "override", attrs=("id",),
        fields=("roleid", "capability", "permission", "timemodified", "modifierid"),
        source=Table("role_capabilities", {"contextid": Param("contextid")}),
        annotate=[("role", "roleid")],
    )
    assignment = Nested(
        "assignment", attrs=("id",),
        fields=("roleid", "userid", "timemodified", "modifierid", "component", "itemid",
                "sortorder"),
        source=(Table("role_assignments", {"contextid": Param("contextid")})
                if ctx.run.setting("role_assignments") else None),
        annotate=[("role", "roleid"), ("user", "userid")],
    )
    assignments = Nested("role_assignments")
    if assignment.source is not None:
        assignments.add(assignment)
    return Nested("roles", children=[
        Nested("role_overrides", children=[override]), assignments,
    ])


def comments_structure(ctx: TaskContext) -> Nested:
    """comments.xml: every comment made in the context, annotating users."""
    comment = Nested(
        "comment", attrs=("id",),
        fields=("component", "commentarea", "itemid", "content", "format", "userid",
                "timecreated"),
        source=Table("comments", {"contextid": Param("contextid")}),
        annotate=[("user", "userid")],
    )
    return Nested("comments", children=[comment])


def write_inforef(ctx: TaskContext) -> bytes:
    """inforef.xml: what this task annotated so far, by item type.

    Moodle reads each type back from backup_ids_temp without ORDER BY;
    PostgreSQL answers that through the (backupid, itemname, itemid) index,
    so the ids come out in ascending numeric order -- what the reference
    backups show even where annotation order differs (course 38's roles: 5
    annotated by enrolments before 3 by role assignments, written 3, 5).
    """
    pending = ctx.run.memo.pop(PENDING_INFOREF, None)
    if pending is not None:
        ctx.ids.update(pending)
    writer = XmlWriter()
    writer.begin("inforef")
    for item in INFOREF_ITEMS:
        ids = ctx.ids.get(item)
        if not ids:
            continue
        writer.begin(item + "ref")
        for value in sorted(ids, key=_numeric):
            writer.begin(item)
            writer.full("id", value)
            writer.end(item)
        writer.end(item + "ref")
    writer.end("inforef")
    return writer.getvalue()


def _numeric(value: str) -> tuple[int, str]:
    return (int(value), "") if value.lstrip("-").isdigit() else (0, value)


def roles_step() -> Step:
    return Step("roles.xml", build=roles_structure)


def comments_step() -> Step:
    return Step("comments.xml", build=comments_structure)


def inforef_step() -> Step:
    return Step("inforef.xml", write=write_inforef)
