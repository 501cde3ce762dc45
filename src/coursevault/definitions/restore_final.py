"""What a course backup holds outside its sections and activities, restored.

The roles of roles.xml are this site's roles of the same short name
(Moodle's default role mapping for a restore into a site that has them);
groups and groupings (groups.xml), enrolment instances with their user
enrolments (course/enrolments.xml), role assignments and overrides of a
context (roles.xml of the course and of each activity), the gradebook
(gradebook.xml: categories, course and category items, letters, settings)
and each activity's grade items (grades.xml) go through the same
definitions that wrote them.  A grade category's ``path`` and ``depth``
and an item's ``iteminstance`` name rows of the restore, so they are fixed
after the insert.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from coursevault.definitions import (
    activity_grades,
    context_members,
    course_structures,
    final_gradebook,
    final_groups,
)
from coursevault.definitions.restore_files import restoring_user
from coursevault.definitions.restore_users import is_deleted_user
from coursevault.structure.context import TaskContext
from coursevault.structure.restore_engine import (
    RestoreContext,
    insert_records,
    is_scale_reference,
)
from coursevault.structure.reverse import NULL, MemberReader, Record, XmlSource

GRADE_TABLES = {
    "grade_item": "grade_items",
    "grade_grade": "grade_grades",
    "grade_setting": "grade_settings",
    "grade_category": "grade_categories",
}
# references between rows of one restore that no annotation names
REFS: dict[tuple[str, str], str] = {
    ("groupings_groups", "groupid"): "groups",
    ("grade_items", "categoryid"): "grade_categories",
    ("grade_categories", "parent"): "grade_categories",
}


def map_roles(rc: RestoreContext, data: bytes) -> None:
    """roles.xml (top level): each backup role is this site's role of the
    same short name; a role the site lacks is left unmapped (its
    assignments are dropped, and counted)."""
    for el in ET.fromstring(data).iterfind("role"):
        row = rc.writer.one("role", {"shortname": el.findtext("shortname") or ""})
        if row is not None:
            rc.ids.set("role", el.get("id"), int(row["id"]))
        else:
            rc.warnings.append(
                f"role {el.findtext('shortname')!r} is not in this site: "
                "its assignments are left out"
            )


def restore_role_names(rc: RestoreContext, data: bytes) -> None:
    """roles.xml's ``nameincourse``: the course's own name for a mapped
    role, unless the course names it already (``set_course_role_names``,
    which ``process_course`` calls)."""
    for el in ET.fromstring(data).iterfind("role"):
        name = el.findtext("nameincourse")
        roleid = rc.ids.get("role", el.get("id"))
        if not name or name == NULL or roleid is None:
            continue
        where = {"roleid": roleid, "contextid": rc.param("coursecontextid")}
        if rc.writer.dry_run or rc.writer.one("role_names", where) is None:
            rc.writer.insert("role_names", {**where, "name": name})


def restore_groups(rc: RestoreContext, ctx: TaskContext, data: bytes) -> None:
    reader = MemberReader("groups.xml", data)
    insert_records(
        rc,
        reader.records(final_groups.groups_structure(ctx)),
        refs=REFS,
        tables={"group": "groups", "grouping": "groupings"},
        hooks={"group_member": _member_of_mapped_user},
    )


def _member_of_mapped_user(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    return bool(row.get("userid"))


def restore_enrolments(rc: RestoreContext, ctx: TaskContext, data: XmlSource) -> None:
    reader = MemberReader("course/enrolments.xml", data)
    insert_records(
        rc,
        reader.records(course_structures.enrolments_structure(ctx)),
        hooks={"enrol": _known_enrol_plugin, "enrolment": _member_of_mapped_user},
    )


def _known_enrol_plugin(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    """An instance of an enrolment plugin the site has not enabled is left
    out with its user enrolments, as ``restore_enrolments_structure_step``
    skips it."""
    enabled = rc.writer.one("config", {"name": "enrol_plugins_enabled"})
    names = str(enabled["value"]).split(",") if enabled and enabled.get("value") else []
    if row.get("enrol") in names:
        row["sortorder"] = rc.later.setdefault("enrol_sortorder", [0])[0]
        rc.later["enrol_sortorder"][0] += 1
        return True
    rec.extra["skipped"] = True
    rc.warnings.append(
        f"enrolment method {row.get('enrol')!r} is not enabled in this site: "
        "left out with its enrolments"
    )
    return False


def restore_roles(rc: RestoreContext, ctx: TaskContext, member: str, data: XmlSource) -> None:
    """A context's roles.xml: overrides and assignments of mapped roles and users."""
    reader = MemberReader(member, data)
    unknown: set[str] = set()

    def override(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
        return _override(rc, row, unknown)

    insert_records(
        rc,
        reader.records(context_members.roles_structure(ctx)),
        hooks={"override": override, "assignment": _assignment_mapped},
    )
    if unknown:
        rc.warnings.append(
            f"{member}: role overrides of capabilities this site does not have left out: "
            + ", ".join(sorted(unknown))
        )


def _override(rc: RestoreContext, row: dict[str, Any], unknown: set[str]) -> bool:
    """An override of a mapped role, of a capability the site has: one of a
    plugin the site lacks is left out, as ``process_override`` skips it
    ("Capability ... was not found!"; Moodle's restore of the corpus's
    availability-setting course kept none of its 8 such overrides)."""
    if not row.get("roleid"):
        return False
    capability = str(row.get("capability") or "")
    if rc.writer.one("capabilities", {"name": capability}) is None:
        unknown.add(capability)
        return False
    return True


def _assignment_mapped(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    if row.get("component") and row.get("itemid") not in (None, "", "0"):
        # an assignment an enrolment instance made names that instance
        row["itemid"] = rc.ids.get("enrol", row["itemid"]) or 0
    # "Only assign roles to not deleted users" (restore_ras_and_caps_structure_step)
    return bool(row.get("roleid")) and bool(row.get("userid")) and not is_deleted_user(
        rc, row["userid"])


def restore_activity_grades(
    rc: RestoreContext, ctx: TaskContext, member: str, data: XmlSource
) -> None:
    """grades.xml: the activity's grade items (``iteminstance`` the new
    activity, in the course's grade category until gradebook.xml maps it)
    and their grades."""
    reader = MemberReader(member, data)
    insert_records(
        rc,
        reader.records(activity_grades.grades_structure(ctx)),
        refs=REFS,
        tables=GRADE_TABLES,
        hooks={"grade_item": _activity_item, "grade_grade": _activity_grade},
    )


def _activity_item(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    row["iteminstance"] = rc.param("activityid")
    _idnumber(rc, row)
    return True


def _idnumber(rc: RestoreContext, row: dict[str, Any]) -> None:
    """An idnumber the course's grade items already use is dropped (NULL),
    as ``process_grade_item`` drops it (a merge into a course that has it);
    any other is kept as the backup has it -- an empty one stays empty,
    where Moodle's restore turns it into NULL (the site's README lists that
    difference of Moodle's own round trip; coursevault's keeps the data)."""
    idnumber = row.get("idnumber")
    if (
        idnumber
        and rc.writer.one("grade_items", {"courseid": rc.param("courseid"), "idnumber": idnumber})
        is not None
    ):
        row["idnumber"] = None


def _activity_grade(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    """A grade of an activity's item.  A NULL ``rawscaleid`` stays NULL:
    Moodle's activity step maps it through ``get_mappingid`` to 0 (the
    reference site's restored courses show it), coursevault keeps the data."""
    return _grade_of_item(rc, rec, row)


def _grade_of_item(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    """A grade of a restored item, for a restored user; who last changed it
    is that user's restored self, or NULL (``get_mappingid('user',
    $data->usermodified, null)`` in both grade steps: gradebook.xml does not
    annotate it, and an activity's user left out is no one, not user 0)."""
    row["itemid"] = rec.up("id", "grade_item").new_id
    row["usermodified"] = rc.ids.get("user", rec.values.get("usermodified"))
    return bool(row.get("userid"))


# (component, grading area) -> table whose ids a grading instance's itemid
# names (the activity task's grading item mapping: an assignment's grade)
GRADING_ITEMS: dict[tuple[str, str], str] = {
    ("mod_assign", "submissions"): "assign_grades",
    ("mod_forum", "forum"): "forum_grades",
}
# references between a grading form's rows
GRADING_REFS: dict[tuple[str, str], str] = {
    ("gradingform_rubric_fillings", "criterionid"): "gradingform_rubric_criteria",
    ("gradingform_rubric_fillings", "levelid"): "gradingform_rubric_levels",
    ("gradingform_guide_fillings", "criterionid"): "gradingform_guide_criteria",
}


def restore_grading(rc: RestoreContext, ctx: TaskContext, member: str, data: XmlSource) -> None:
    """grading.xml (``restore_activity_grading_structure_step``): the
    module's grading areas, their definitions (made by the restoring user,
    now) with each form's criteria and levels, and -- with users -- the
    instances, whose ``itemid`` names the module's restored grade; an
    instance whose grade is not restored is left out (and counted)."""
    component = "mod_" + str(ctx.param("modulename"))

    def definition(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
        now = rc.params.get("now", 0)
        user = restoring_user(rc) or 0
        row.update(
            usercreated=user,
            usermodified=user,
            timecreated=now,
            timemodified=now,
            copiedfromid=None,
            timecopied=0,
        )
        return True

    def instance(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
        area = str(rec.up("id", "area").values.get("areaname"))
        table = GRADING_ITEMS.get((component, area))
        if table is None or str(row.get("itemid") or "0") == "0":
            return True
        row["itemid"] = rc.ids.get(table, row["itemid"])
        if row["itemid"] is None:
            rc.unmapped[f"{table} via grading_instances.itemid"] += 1
            return False
        return True

    reader = MemberReader(member, data)
    insert_records(
        rc,
        reader.records(activity_grades.grading_structure(ctx)),
        refs=GRADING_REFS,
        hooks={"definition": definition, "instance": instance},
    )


def restore_gradebook(rc: RestoreContext, ctx: TaskContext, data: bytes) -> None:
    """gradebook.xml: categories (parents first, as Moodle writes them),
    the course and category items, their grades, letters and settings."""
    reader = MemberReader("gradebook.xml", data)
    records = [r for r in reader.records(final_gradebook.gradebook_structure(ctx))]
    insert_records(
        rc,
        records,
        refs=REFS,
        tables=GRADE_TABLES,
        hooks={
            "grade_item": _course_item,
            "grade_grade": _grade_of_item,
            "grade_setting": _setting,
        },
    )
    for rec in records:
        if rec.name == "grade_category" and rec.new_id is not None:
            _category_path(rc, rec)


def _course_item(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    if row.get("itemtype") in ("course", "category"):
        old = row.get("iteminstance")
        row["iteminstance"] = rc.ids.get("grade_categories", old) or 0
    _idnumber(rc, row)
    return True


def _setting(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    """``process_grade_setting``: a setting the course has already is
    updated instead; ``minmaxtouse`` is never restored into an existing
    course (a merge), nor over the course's own."""
    if rc.params.get("merge") and row.get("name") == "minmaxtouse":
        return False
    row["courseid"] = rc.param("courseid")
    found = rc.writer.one("grade_settings", {"courseid": row["courseid"], "name": row.get("name")})
    if found is None:
        return True
    if row.get("name") != "minmaxtouse":
        rc.writer.update("grade_settings", int(found["id"]), {"value": row.get("value")})
    return False


def _category_path(rc: RestoreContext, rec: Record) -> None:
    """``/id/id/`` from the restored parents' paths (parents come first)."""
    old_path = str(rec.values.get("path") or "")
    new = [rc.ids.get("grade_categories", part) for part in old_path.strip("/").split("/") if part]
    path = "/" + "/".join(str(n) for n in new if n) + "/"
    parent = rc.ids.get("grade_categories", rec.values.get("parent"))
    rc.writer.update("grade_categories", int(rec.new_id or 0), {"path": path, "parent": parent})


def restore_scales(rc: RestoreContext, data: bytes) -> None:
    """scales.xml (``restore_scales_structure_step``): a scale whose items
    this site already has -- in the site or a standard one -- is that scale;
    any other is created, in the new course (a site scale stays a site one)."""
    for el in ET.fromstring(data).iterfind("scale"):
        values = {child.tag: child.text or "" for child in el}
        found = rc.writer.one("scale", {"scale": values.get("scale", ""), "courseid": 0})
        if found is None and values.get("courseid") == "0":
            found = rc.writer.one("scale", {"scale": values.get("scale", "")})
        if found is None:  # restoring into a course that has it (a merge)
            found = rc.writer.one(
                "scale", {"scale": values.get("scale", ""), "courseid": rc.param("courseid")}
            )
        if found is not None:
            rc.ids.set("scale", el.get("id"), int(found["id"]))
            continue
        row: dict[str, Any] = dict(values)
        row["courseid"] = 0 if values.get("courseid") == "0" else rc.param("courseid")
        row["userid"] = rc.ids.get("user", values.get("userid")) or 0
        rc.ids.set("scale", el.get("id"), rc.writer.insert("scale", row))


def restore_outcomes(rc: RestoreContext, data: bytes) -> None:
    """outcomes.xml: an outcome of the same short name in the site is that
    outcome; others are created in the new course, with their scale mapped."""
    for el in ET.fromstring(data).iterfind("outcome"):
        values = {child.tag: child.text or "" for child in el}
        found = (
            rc.writer.one(
                "grade_outcomes", {"shortname": values.get("shortname", ""), "courseid": None}
            )
            if values.get("courseid") in ("", "$@NULL@$")
            else None
        )
        if found is None:  # restoring into a course that has it (a merge)
            found = rc.writer.one(
                "grade_outcomes",
                {"shortname": values.get("shortname", ""), "courseid": rc.param("courseid")},
            )
        if found is None:
            row: dict[str, Any] = dict(values)
            row["courseid"] = rc.param("courseid")
            row["scaleid"] = rc.ids.get("scale", values.get("scaleid")) or 0
            # the restoring user when the backup's is not restored (process_outcome)
            row["usermodified"] = rc.ids.get("user", values.get("usermodified")) or restoring_user(
                rc
            )
            new = rc.writer.insert("grade_outcomes", row)
        else:
            new = int(found["id"])
        rc.ids.set("grade_outcomes", el.get("id"), new)
        link = {"courseid": rc.param("courseid"), "outcomeid": new}
        if rc.writer.dry_run or rc.writer.one("grade_outcomes_courses", link) is None:
            rc.writer.insert("grade_outcomes_courses", link)


def negative_scale(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    """An activity graded with a scale stores minus the scale's id (in
    ``grade`` or ``scale``): minus the restored scale's.  A column the
    definition annotates as a scale (the forum's, the database's) was
    mapped already with the other annotations: mapping it again would take
    the new id for an old one.  A scale the backup lacks makes it 0, as
    ``-get_mappingid()`` of nothing does."""
    annotated = {column for item, column in rec.node.annotations if item == "scale"}
    for column in ("grade", "scale"):
        value = row.get(column)
        if column not in annotated and is_scale_reference(value):
            row[column] = rc.map_ref("scale", value, column=column)  # 0 if unmapped
    return True
