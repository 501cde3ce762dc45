"""Restoring into an existing course (``--into COURSEID --merge``), and
restoring only part of a backup (``--only activities/forum_12``).

Moodle's "merge the backup course into this course" (``TARGET_EXISTING_ADDING``):
the course row and its settings stay as they are; each section of the
backup is the course's section of the same number when it has one (the
restored modules are appended to its sequence) and a new section
otherwise; groups and groupings of the same name, enrolment instances of
the same method, the course's own grade category and course grade item are
the course's; everything else is added.  Role assignments and user
enrolments the course already has are not written twice.

``--only`` picks activities and sections by their folder in the backup
(``activities/forum_12``, ``sections/section_3``: a section brings its
activities).  Course-level members (enrolments, the course's role
assignments) are then left alone: one activity from last week comes back
into today's course with what it needs -- its section, its grade items,
its files, its users and groups -- and nothing else changes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from coursevault.definitions.restore_course import CONTEXT_COURSE, finals
from coursevault.definitions.restore_info import ActivityInfo, BackupInfo, SectionInfo
from coursevault.definitions.restore_users import is_deleted_user
from coursevault.errors import BadInputError, SiteDataError
from coursevault.structure.restore_engine import Hook, RestoreContext
from coursevault.structure.reverse import Record


def select(info: BackupInfo, only: tuple[str, ...]) -> tuple[list[SectionInfo],
                                                           list[ActivityInfo]]:
    """The sections and activities ``--only`` names (all without it); a
    section named brings its activities, an activity its section."""
    if not only:
        return list(info.sections), list(info.activities)
    wanted = {p.strip("/") for p in only}
    known = {s.directory for s in info.sections} | {a.directory for a in info.activities}
    unknown = sorted(wanted - known)
    if unknown:
        raise BadInputError(f"--only {unknown[0]}: the backup has no such folder (it has "
                            f"{', '.join(sorted(known)[:6])}{'...' if len(known) > 6 else ''})")
    section_ids = {s.sectionid for s in info.sections if s.directory in wanted}
    activities = [a for a in info.activities
                  if a.directory in wanted or a.sectionid in section_ids]
    section_ids |= {a.sectionid for a in activities}
    return [s for s in info.sections if s.sectionid in section_ids], activities


def existing_course(rc: RestoreContext, courseid: int) -> tuple[int, int]:
    """The course to merge into and its context; refused when missing.  Its
    row is held to the end of the restore (another restore into it waits)."""
    if not rc.writer.lock("course", courseid):
        raise SiteDataError(f"course {courseid} does not exist in the site")
    ctx = rc.writer.one("context", {"contextlevel": CONTEXT_COURSE, "instanceid": courseid})
    if ctx is None:
        raise SiteDataError(f"course {courseid} has no context: not a usable course")
    return courseid, int(ctx["id"])


def merge_section(rc: RestoreContext, data: bytes) -> int | None:
    """The course's section of the backup section's number, mapped (its
    modules are appended later); None when the course has no such section."""
    root = ET.fromstring(data)
    number = finals(root).get("number")
    found = rc.writer.one("course_sections", {"course": rc.param("courseid"),
                                              "section": number})
    if found is None:
        return None
    rc.ids.set("course_sections", root.get("id"), int(found["id"]))
    rc.later.setdefault("merged_sections", []).append(
        (int(found["id"]), str(found.get("sequence") or ""),
         finals(root).get("sequence") or ""))
    return int(found["id"])


def finish_merge(rc: RestoreContext, courseid: int, now: int) -> None:
    """Append the restored modules to the sequences of the course's own
    sections; make Moodle rebuild the course's cache."""
    for section, existing, backup in rc.later.get("merged_sections", []):
        restored = [rc.ids.get("course_modules", old) for old in backup.split(",") if old]
        ids = [i for i in existing.split(",") if i] + [str(c) for c in restored if c]
        rc.writer.update("course_sections", section, {"sequence": ",".join(ids)})
    rc.writer.update("course", courseid, {"cacherev": now})


def _same_named(table: str, rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    found = rc.writer.one(table, {"courseid": rc.param("courseid"), "name": row.get("name")})
    if found is None:
        return True
    rec.new_id = int(found["id"])
    return False


def _front_page(rc: RestoreContext) -> bool:
    """Whether the course merged into is the site's (category 0): Moodle
    restores no enrolments there (restore_enrolments_structure_step's
    execute_condition; "No enrolments in front page")."""
    if "front_page" not in rc.later:
        course = rc.writer.one("course", {"id": rc.param("courseid")})
        site = course is not None and str(course.get("category") or "0") == "0"
        rc.later["front_page"] = [site]
    return bool(rc.later["front_page"][0])


def _enrol(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    if _front_page(rc):
        return False
    found = rc.writer.one("enrol", {"courseid": rc.param("courseid"), "enrol": row.get("enrol")})
    if found is None:
        return True
    rec.new_id = int(found["id"])
    return False


def _user_enrolment(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    if not row.get("userid") or _front_page(rc):
        return False
    enrolid = rec.up("id", "enrol").new_id
    return rc.writer.one("user_enrolments", {"enrolid": enrolid,
                                             "userid": row["userid"]}) is None


def _group_member(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    if not row.get("userid"):
        return False
    return rc.writer.one("groups_members", {"groupid": row.get("groupid"),
                                            "userid": row["userid"]}) is None


def _grouping_group(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    return rc.writer.one("groupings_groups", {"groupingid": row.get("groupingid"),
                                              "groupid": row.get("groupid")}) is None


def _grade_letter(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    """A course's own letters stay: the backup's are added only to a context
    that has none (``process_grade_letter`` on a merge)."""
    key = f"letters:{row.get('contextid')}"
    if key not in rc.later:
        rc.later[key] = [rc.writer.one("grade_letters", {"contextid": row.get("contextid")})
                         is None]
    return bool(rc.later[key][0])


def _assignment(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
    if not row.get("roleid") or not row.get("userid") or is_deleted_user(rc, row["userid"]):
        return False
    return rc.writer.one("role_assignments", {
        "roleid": row["roleid"], "userid": row["userid"],
        "contextid": row.get("contextid") or rc.param("contextid")}) is None


def _grade_category(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    """The backup's top category is the course's; another of the same name too."""
    where: dict[str, Any] = {"courseid": rc.param("courseid")}
    if rec.values.get("parent") in (None, "", "0"):
        where["parent"] = None
    else:
        where["fullname"] = row.get("fullname")
    found = rc.writer.one("grade_categories", where)
    if found is None:
        return True
    rec.new_id = int(found["id"])
    rec.extra["matched"] = True
    return False


def _grade_item(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    """The course's course item and its categories' items are the course's."""
    if row.get("itemtype") not in ("course", "category"):
        return True
    category = rc.ids.get("grade_categories", row.get("iteminstance"))
    found = rc.writer.one("grade_items", {"courseid": rc.param("courseid"),
                                          "itemtype": row.get("itemtype"),
                                          "iteminstance": category})
    if found is None:
        return True
    rec.new_id = int(found["id"])
    rec.extra["skipped"] = True  # its grades are the course's to compute
    return False


def _only_category(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    """Restoring part of a course: its grade categories are the course's
    (by name, else its top one); none is added."""
    if _grade_category(rc, rec, row):
        top = rc.writer.one("grade_categories", {"courseid": rc.param("courseid"),
                                                 "parent": None})
        rec.new_id = int(top["id"]) if top is not None else None
        rec.extra["matched"] = True
    return False


def _only_item(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    """Restoring part of a course: its activities' grade items are added,
    no course-level one (manual items, the course's) is."""
    if row.get("itemtype") == "mod":
        return True
    if _grade_item(rc, rec, row):
        rec.extra["skipped"] = True
    return False


# restoring only some activities or sections (--only)
PART_HOOKS: dict[str, Hook] = {"grade_category": _only_category, "grade_item": _only_item}

HOOKS: dict[str, Hook] = {
    "group": lambda rc, rec, row: _same_named("groups", rc, rec, row),
    "grouping": lambda rc, rec, row: _same_named("groupings", rc, rec, row),
    "group_member": _group_member, "grouping_group": _grouping_group,
    "enrol": _enrol, "enrolment": _user_enrolment, "assignment": _assignment,
    "grade_category": _grade_category, "grade_item": _grade_item,
    "grade_letter": _grade_letter,
}
