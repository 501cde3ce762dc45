"""groups.xml: ``backup_groups_structure_step`` (backup/moodle2/backup_stepslib.php).

The groups and groupings annotated along the backup (the course task
annotates all of the course's, activities their groupings' groups), their
custom fields, and the members when users are included.  Members are
annotated straight as ``userfinal``: groups.xml is the final task's first
step, so they reach users.xml.
"""

from __future__ import annotations

from collections.abc import Iterable

from coursevault.definitions.final_annotations import final_ids, rows_by_ids
from coursevault.moodledb.site import Row
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import FileArea, Nested, Rows, Table, Up
from coursevault.structure.engine import Instance

_CUSTOM = ("id", "shortname", "type", "value", "valueformat", "valuetrust")


def groups_structure(ctx: TaskContext) -> Nested:
    include = ctx.run.setting("groups")
    customfields = include and ctx.run.setting("customfield")

    def groups(c: TaskContext, _p: Instance | None) -> list[Row]:
        return rows_by_ids(c, "SELECT * FROM {groups} WHERE id IN",
                           final_ids(c, "group")) if include else []

    def groupings(c: TaskContext, _p: Instance | None) -> list[Row]:
        return rows_by_ids(c, "SELECT * FROM {groupings} WHERE id IN",
                           final_ids(c, "grouping")) if include else []

    member = Nested(
        "group_member", attrs=("id",), fields=("userid", "timeadded", "component", "itemid"),
        source=Table("groups_members", {"groupid": Up("id")}) if ctx.users else None,
        annotate=[("userfinal", "userid")],
    )
    group = Nested(
        "group", attrs=("id",),
        fields=("name", "idnumber", "description", "descriptionformat", "enrolmentkey",
                "picture", "visibility", "participation", "timecreated", "timemodified"),
        source=Rows(groups),
        files=[FileArea("group", "description", "id"), FileArea("group", "icon", "id")],
        children=[Nested("group_members", children=[member] if ctx.users else [])],
    )
    grouping = Nested(
        "grouping", attrs=("id",),
        fields=("name", "idnumber", "description", "descriptionformat", "configdata",
                "timecreated", "timemodified"),
        source=Rows(groupings),
        files=[FileArea("grouping", "description", "id")],
        children=[Nested("grouping_groups", children=[Nested(
            "grouping_group", attrs=("id",), fields=("groupid", "timeadded"),
            source=Table("groupings_groups", {"groupingid": Up("id")}))])],
    )
    group_cf = Nested("groupcustomfield", attrs=("id",), fields=(*_CUSTOM[1:], "groupid"),
                      source=Rows(lambda c, _p: _custom_fields(c, "group", groups(c, None)))
                      if customfields else None)
    grouping_cf = Nested("groupingcustomfield", attrs=("id",),
                         fields=(*_CUSTOM[1:], "groupingid"),
                         source=Rows(lambda c, _p: _custom_fields(
                             c, "grouping", groupings(c, None))) if customfields else None)
    return Nested("groups", children=[
        group,
        Nested("groupcustomfields", children=[group_cf] if customfields else []),
        Nested("groupings", children=[
            grouping,
            Nested("groupingcustomfields", children=[grouping_cf] if customfields else []),
        ]),
    ])


def _custom_fields(ctx: TaskContext, area: str, instances: Iterable[Row]) -> list[Row]:
    """``core_group\\customfield\\{group,grouping}_handler::get_instance_data_for_backup``
    for each instance: its fields that hold data, in the fields' order."""
    found: list[Row] = []
    for instance in instances:
        for row in ctx.reader.sql(
            "SELECT d.id, f.shortname, f.type, d.value, d.valueformat, d.valuetrust "
            "FROM {customfield_data} d JOIN {customfield_field} f ON f.id = d.fieldid "
            "JOIN {customfield_category} c ON c.id = f.categoryid "
            "WHERE c.component = 'core_group' AND c.area = ? AND d.instanceid = ? "
            "ORDER BY c.sortorder, f.sortorder", [area, instance["id"]],
        ):
            found.append({**row, area + "id": instance["id"]})
    return found
