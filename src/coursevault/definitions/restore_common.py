"""The members every context task restores alike: users' completion,
comments, calendar events and tags.

``restore_userscompletion_structure_step``, ``restore_comments_structure_step``
and ``restore_calendarevents_structure_step`` (backup/moodle2/restore_stepslib.php)
and ``core_tag_tag::add_item_tag``, read against the trees that wrote the
members (definitions/activity_task.py, context_members.py,
course_structures.py), so a member restores exactly what its backup wrote.

What the trees cannot say is declared here: which table a comment's
``itemid`` names, per comment area (each task's
``get_comment_mapping_itemname``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from coursevault.definitions import activity_task, context_members, final_completion
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import In, Nested, Param, Sql, Up
from coursevault.structure.restore_engine import RestoreContext, insert_records
from coursevault.structure.reverse import MemberReader, Record, XmlSource

# comment area -> table its itemid names (``get_comment_mapping_itemname``
# of mod_assign, mod_glossary, mod_data, mod_wiki); an area not listed keeps
# itemid 0 (a page's comments: block_comments)
COMMENT_ITEMS: dict[str, str] = {
    "submission_comments": "assign_submission",
    "glossary_entry": "glossary_entries",
    "database_entry": "data_records",
    "wiki_page": "wiki_pages",
}
# references between event rows (a repeated event's master)
EVENT_REFS: dict[tuple[str, str], str] = {("event", "repeatid"): "event"}


def restore_completion(rc: RestoreContext, ctx: TaskContext, member: str, data: bytes) -> None:
    """completion.xml: each user's completion state and view of the module
    (``coursemoduleid`` the restored module); users not restored are left out."""
    if not rc.users:
        return
    reader = MemberReader(member, data)
    insert_records(
        rc,
        reader.records(activity_task.userscompletion_structure(ctx)),
        hooks={"completion": _of_mapped_user, "completionview": _of_mapped_user},
    )


def _of_mapped_user(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    return bool(row.get("userid"))


def restore_comments(
    rc: RestoreContext,
    ctx: TaskContext,
    member: str,
    data: bytes,
    items: Mapping[str, str] = COMMENT_ITEMS,
) -> None:
    """comments.xml of a context: a comment on an item (an entry, a
    submission) names the restored item and is left out when the item is
    not restored; a comment whose author is not restored is left out, as
    Moodle's ``process_comment`` does."""
    if not rc.users:
        return  # comments are user data: Moodle backs them up only with users

    def comment(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
        if str(row.get("itemid") or "0") != "0":
            table = items.get(str(row.get("commentarea")))
            if table is not None:
                row["itemid"] = rc.ids.get(table, row["itemid"])
                if row["itemid"] is None:
                    return False
        return bool(row.get("userid"))

    reader = MemberReader(member, data)
    insert_records(
        rc, reader.records(context_members.comments_structure(ctx)), hooks={"comment": comment}
    )


def restore_calendar(
    rc: RestoreContext, tree: Nested, member: str, data: bytes, *, instance: int
) -> None:
    """calendar.xml of the course (``instance`` 0) or of an activity (its
    new instance id): events in the new course (those in none, a user's
    override, stay in none), their group, user and repeated master mapped
    (``process_calendarevents``)."""

    def event(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
        row["instance"] = instance
        if str(rec.values.get("courseid") or "0") == "0":
            row["courseid"] = 0  # a user's override of an activity's dates: in no course
        return True

    reader = MemberReader(member, data)
    insert_records(
        rc, reader.records(tree), refs=EVENT_REFS, tables={"event": "event"}, hooks={"event": event}
    )


# a step of a task's folder: (member path, its bytes)
MemberStep = Callable[[str, Any], None]


def each_member(
    members: Callable[[str], XmlSource | None],
    directory: str,
    steps: Sequence[tuple[str, MemberStep]],
) -> None:
    """Hand each member of ``directory`` the backup holds to its step, in
    order; a member the backup lacks (a setting left it out) is skipped."""
    for name, step in steps:
        path = f"{directory}/{name}"
        data = members(path)
        if data is not None:
            step(path, data)


def activity_members(
    rc: RestoreContext,
    ctx: TaskContext,
    directory: str,
    members: Any,
    *,
    comment_items: Mapping[str, str],
) -> None:
    """An activity's completion.xml, comments.xml and calendar.xml."""
    items = {**COMMENT_ITEMS, **comment_items}
    each_member(
        members,
        directory,
        [
            ("completion.xml", lambda path, data: restore_completion(rc, ctx, path, data)),
            ("comments.xml", lambda path, data: restore_comments(rc, ctx, path, data, items)),
            (
                "calendar.xml",
                lambda path, data: restore_calendar(
                    rc,
                    activity_task.calendar_structure(ctx),
                    path,
                    data,
                    instance=int(rc.param("activityid")),
                ),
            ),
        ],
    )


def restore_course_completion(rc: RestoreContext, ctx: TaskContext, data: bytes) -> None:
    """completion.xml of the course (``restore_course_completion_structure_step``,
    run by the caller only when every activity of the backup was restored):
    criteria naming the restored module (left out when it is not), a role
    mapped, another course by short name; users' criteria completions and
    course completions with users; aggregation methods the course lacks."""

    def criteria(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
        if row.get("module") and str(row.get("moduleinstance") or "0") != "0":
            row["moduleinstance"] = rc.ids.get("course_modules", row["moduleinstance"])
            if row["moduleinstance"] is None:
                rc.unmapped["course_modules via course_completion_criteria"] += 1
                return False
        else:
            row["module"] = row["moduleinstance"] = None
        row["role"] = row.get("role") or None
        shortname = row.get("courseinstanceshortname")
        row["courseinstance"] = None
        if shortname:
            other = rc.writer.one("course", {"shortname": shortname})
            if other is None:
                return False
            row["courseinstance"] = other["id"]
        return True

    def aggregation(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
        return (
            rc.writer.one(
                "course_completion_aggr_methd",
                {"course": rc.param("courseid"), "criteriatype": row.get("criteriatype")},
            )
            is None
        )

    reader = MemberReader("completion.xml", data)
    insert_records(
        rc,
        reader.records(final_completion.completion_structure(ctx)),
        tables={"course_completion_criteria": "course_completion_criteria"},
        hooks={
            "course_completion_criteria": criteria,
            "course_completion_crit_compl": _of_mapped_user,
            "course_completions": _of_mapped_user,
            "course_completion_aggr_methd": aggregation,
        },
    )


# tags -------------------------------------------------------------------

_TI_COLUMN = re.compile(r"\bti\.(\w+)\s*(?:=\s*(\?|'[^']*')|IN\s*\(\s*\?\s*\))", re.IGNORECASE)


def tag_binding(source: Sql) -> dict[str, Any] | None:
    """What a tag element's SQL reads of ``tag_instance`` -- ``itemtype``,
    ``component``, and ``itemid`` or ``contextid`` -- each as a literal, a
    :class:`Param` or an :class:`Up`; None when the source is not a
    ``tag_instance`` join."""
    if "{tag_instance}" not in source.sql:
        return None
    params = iter(source.params)
    found: dict[str, Any] = {}
    for m in _TI_COLUMN.finditer(source.sql):
        column, value = m.group(1).lower(), m.group(2)
        if value is None or value == "?":
            param = next(params, None)
            found[column] = param.value if isinstance(param, In) else param
        else:
            found[column] = value.strip("'")
    return found


def restore_tag_record(rc: RestoreContext, rec: Record) -> None:
    """A ``<tag>`` of a module's tree: the tag added to the restored item
    (``add_item_tag`` with the tag's raw name), the item being the parent
    row (an item's own tags) or the row its ``itemid`` names (a context's
    tags, whose item type is the item's table)."""
    source = rec.node.source
    binding = tag_binding(source) if isinstance(source, Sql) else None
    rawname = rec.values.get("rawname")
    if binding is None or not rawname:
        return
    itemtype, component = binding.get("itemtype"), binding.get("component") or "core"
    item = binding.get("itemid")
    itemid: int | None
    if isinstance(item, Up):
        itemid = rec.up(item.field, item.element).new_id
    elif isinstance(item, Param):
        itemid = rc.params.get(item.name)
    else:
        itemid = rc.ids.get(str(itemtype), rec.values.get("itemid"))
    if itemid is None or not isinstance(itemtype, str):
        rc.unmapped[f"{itemtype} via tag"] += 1
        return
    add_item_tag(rc, str(component), itemtype, itemid, int(rc.param("contextid")), rawname)


def restore_tags(
    rc: RestoreContext,
    el: ET.Element | None,
    component: str,
    itemtype: str,
    itemid: int,
    contextid: int,
) -> None:
    """``<tags><tag><rawname/></tag>...</tags>`` of course.xml or module.xml."""
    if el is None:
        return
    for tag in el.iterfind("tag"):
        rawname = tag.findtext("rawname")
        if rawname:
            add_item_tag(rc, component, itemtype, itemid, contextid, rawname)


def add_item_tag(
    rc: RestoreContext, component: str, itemtype: str, itemid: int, contextid: int, rawname: str
) -> int | None:
    """``core_tag_tag::add_item_tag``: the tag of that name in the area's
    tag collection (created when missing), instanced on the item after its
    other tags (the first at ordering 1: MAX(ordering) + 1 of none, as the
    question tags Moodle's restore made in the reference site); the
    instance's id, None when the area's tags are off.  An item that has the
    tag already keeps it as it is."""
    area = rc.writer.one("tag_area", {"component": component, "itemtype": itemtype})
    if area is not None and str(area.get("enabled")) in ("", "0"):
        return None
    collection = int(area["tagcollid"]) if area is not None else _default_collection(rc)
    tagid = find_or_create_tag(rc, collection, rawname)
    where = {"component": component, "itemtype": itemtype, "itemid": itemid, "tiuserid": 0}
    found = rc.writer.one("tag_instance", {**where, "tagid": tagid})
    if found is not None:
        return int(found["id"])
    top = rc.writer.scalar(
        "SELECT MAX(ordering) FROM {tag_instance} WHERE component = :component"
        " AND itemtype = :itemtype AND itemid = :itemid AND tiuserid = :tiuserid",
        where,
    )
    now = rc.params.get("now", 0)
    return rc.writer.insert(
        "tag_instance",
        {
            **where,
            "tagid": tagid,
            "contextid": contextid,
            "ordering": (0 if top is None else int(top)) + 1,
            "timecreated": now,
            "timemodified": now,
        },
    )


def find_or_create_tag(rc: RestoreContext, collection: int, rawname: str) -> int:
    """The id of the tag of that name (lower case) in ``collection``, made
    when missing (``core_tag_tag::create_if_missing``)."""
    name = rawname.strip().lower()
    tag = rc.writer.one("tag", {"name": name, "tagcollid": collection})
    if tag is not None:
        return int(tag["id"])
    return rc.writer.insert(
        "tag",
        {
            "userid": 0,
            "tagcollid": collection,
            "name": name,
            "rawname": rawname.strip(),
            "isstandard": 0,
            "description": None,
            "descriptionformat": 0,
            "flag": 0,
            "timemodified": rc.params.get("now", 0),
        },
    )


def _default_collection(rc: RestoreContext) -> int:
    row = rc.writer.one("tag_coll", {"isdefault": 1})
    return int(row["id"]) if row is not None else 1
