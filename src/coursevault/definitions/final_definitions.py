"""roles.xml, scales.xml and outcomes.xml: the definitions the backup refers to
(``backup_final_roles_structure_step``, ``backup_final_scales_structure_step``,
``backup_final_outcomes_structure_step`` in backup/moodle2/backup_stepslib.php).

Each lists the final annotations of its kind; scales and outcomes live in
the system context, where their files are annotated from.
"""

from __future__ import annotations

from coursevault.definitions.final_annotations import final_ids, rows_by_ids, system_context_id
from coursevault.moodledb.site import Row
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import FileArea, Nested, Rows
from coursevault.structure.engine import Instance


def roles_structure(ctx: TaskContext) -> Nested:
    def roles(c: TaskContext, _p: Instance | None) -> list[Row]:
        return rows_by_ids(
            c, "SELECT r.*, rn.name AS nameincourse FROM {role} r "
            "LEFT JOIN {role_names} rn ON r.id = rn.roleid AND rn.contextid = "
            f"{int(c.param('coursecontextid'))} WHERE r.id IN", final_ids(c, "role"))

    return Nested("roles_definition", children=[Nested(
        "role", attrs=("id",),
        fields=("name", "shortname", "nameincourse", "description", "sortorder", "archetype"),
        source=Rows(roles),
    )])


def scales_structure(ctx: TaskContext) -> Nested:
    def scales(c: TaskContext, _p: Instance | None) -> list[Row]:
        return rows_by_ids(c, "SELECT * FROM {scale} WHERE id IN", final_ids(c, "scale"))

    system = system_context_id(ctx)
    return Nested("scales_definition", children=[Nested(
        "scale", attrs=("id",),
        fields=("courseid", "userid", "name", "scale", "description", "descriptionformat",
                "timemodified"),
        source=Rows(scales),
        compute={"systemcontextid": lambda _r, _c: system},
        files=[FileArea("grade", "scale", "id", context_field="systemcontextid")],
    )])


def outcomes_structure(ctx: TaskContext) -> Nested:
    def outcomes(c: TaskContext, _p: Instance | None) -> list[Row]:
        return rows_by_ids(c, "SELECT * FROM {grade_outcomes} WHERE id IN",
                           final_ids(c, "outcome"))

    system = system_context_id(ctx)
    return Nested("outcomes_definition", children=[Nested(
        "outcome", attrs=("id",),
        fields=("courseid", "shortname", "fullname", "scaleid", "description",
                "descriptionformat", "timecreated", "timemodified", "usermodified"),
        source=Rows(outcomes),
        compute={"systemcontextid": lambda _r, _c: system},
        files=[FileArea("grade", "outcome", "id", context_field="systemcontextid")],
    )])
