"""badges.xml into the restored course: ``restore_badges_structure_step``.

The course's badges are read back against the tree that wrote them
(definitions/final_badges.py) and written as Moodle's restore writes them
(backup/moodle2/restore_stepslib.php):

- a badge becomes a course badge of the new course, *inactive* (Moodle
  restores every badge inactive: awarding starts when a teacher enables
  it); its creator and modifier are the restored users, else the
  restoring user; its image (``badges``/``badgeimage``) comes with
  files.xml, its item id the new badge;
- a criterion and its parameters: a parameter naming an activity
  (``module_<cmid>``, ``bydate_<cmid>``) names the restored module, one
  naming the course names the new course, a manual award's role the
  mapped role (left out when the role is not), a competency's likewise
  (competencies are not restored here: left out, as Moodle leaves out a
  competency it cannot map); a parameter the criterion already has is not
  written twice;
- endorsement and alignments as they are; related badges that name a
  badge of the same backup, pointed at its new id once every badge is in
  (Moodle fixes them up after the step), others left out;
- manual awards whose role, recipient and issuer are all mapped;
- tags, added to the badge in ``core_badges``.

Moodle runs the step only when badges and course badges are enabled on
the site and the whole backup is restored with no module left out; the
caller checks the latter, :func:`badges_enabled` the former.
"""

from __future__ import annotations

from typing import Any

from coursevault.definitions import final_badges
from coursevault.definitions.restore_common import add_item_tag
from coursevault.definitions.restore_files import restoring_user
from coursevault.structure.context import TaskContext
from coursevault.structure.restore_engine import RestoreContext, insert_records
from coursevault.structure.reverse import MemberReader, Record

BADGE_TYPE_COURSE = 2
BADGE_STATUS_INACTIVE = 0
# badge_criteria.criteriatype (lib/badgeslib.php)
CRITERIA_ACTIVITY = 1
CRITERIA_MANUAL = 2
CRITERIA_COURSE = 4
CRITERIA_COMPETENCY = 9
# the site settings both of which Moodle needs on (their default is on)
SETTINGS = ("enablebadges", "badges_allowcoursebadges")


def badges_enabled(rc: RestoreContext) -> bool:
    """Badges and course badges enabled in the site (a setting the site
    lacks is Moodle's default: on)."""
    for name in SETTINGS:
        row = rc.writer.one("config", {"name": name})
        if row is not None and str(row.get("value") or "0") in ("", "0"):
            return False
    return True


def restore_badges(rc: RestoreContext, ctx: TaskContext, data: bytes) -> int:
    """Restore badges.xml; the number of badges restored."""
    related: list[tuple[int, str]] = []  # (new badge, old related badge)
    restorer = restoring_user(rc)

    def badge(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
        for column in ("usercreated", "usermodified"):
            row[column] = row.get(column) or restorer
        for column in ("timecreated", "timemodified"):  # kept as they were: no date offset
            row[column] = rec.values.get(column)
        row.update(
            type=BADGE_TYPE_COURSE, courseid=rc.param("courseid"), status=BADGE_STATUS_INACTIVE
        )
        return True

    def relatedbadge(rc: RestoreContext, rec: Record) -> None:
        old = rec.values.get("relatedbadgeid")
        if old and old != "0":  # written once every badge has its new id
            related.append((_badge_of(rec), old))

    tree = final_badges.badges_structure(ctx)
    reader = MemberReader("badges.xml", data)
    written = insert_records(
        rc,
        reader.records(tree),
        tables={"badge": "badge", "parameter": "badge_criteria_param"},
        hooks={
            "badge": badge,
            "criterion": _of_badge,
            "endorsement": _of_badge,
            "alignment": _of_badge,
            "manual_award": _manual_award,
            "parameter": _parameter,
        },
        writers={"tag": _tag, "relatedbadge": relatedbadge},
    )
    for new, old in related:
        target = rc.ids.get("badge", old)
        if target is None:
            rc.unmapped["badge via badge_related.relatedbadgeid"] += 1
            continue
        rc.writer.insert("badge_related", {"badgeid": new, "relatedbadgeid": target})
    return written.get("badge", 0)


def _badge_of(rec: Record) -> int:
    new = rec.up(element="badge").new_id
    assert new is not None  # a badge's children come after it is written
    return new


def _of_badge(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    """``badgeid`` the restored badge (the tree annotates the column it
    binds: the annotation would map the new id again)."""
    row["badgeid"] = _badge_of(rec)
    if rec.name == "criterion":
        row["description"] = row.get("description") or ""
        row["descriptionformat"] = row.get("descriptionformat") or 0
    return True


def _manual_award(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    row["badgeid"] = _badge_of(rec)
    return (
        bool(row.get("issuerrole")) and bool(row.get("recipientid")) and bool(row.get("issuerid"))
    )


def _parameter(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
    """``process_parameter``: the ids a parameter's name and value hold,
    mapped by its criterion's type."""
    criterion = rec.up(element="criterion")
    assert criterion.new_id is not None
    name = str(rec.values.get("name") or "")
    value = rec.values.get("value")
    kind = str(rec.values.get("criteriatype") or criterion.values.get("criteriatype") or "")
    prefix, _sep, old = name.partition("_")
    new: Any
    if kind == str(CRITERIA_ACTIVITY):
        module = rc.ids.get("course_modules", old)
        if module is None:
            rc.unmapped["course_modules via badge_criteria_param"] += 1
            module = 0
        new = {"name": f"{prefix}_{module}", "value": module if prefix == "module" else value}
    elif kind == str(CRITERIA_COURSE):
        course = rc.param("courseid")
        new = {"name": f"{prefix}_{course}", "value": course if prefix == "course" else value}
    elif kind in (str(CRITERIA_MANUAL), str(CRITERIA_COMPETENCY)):
        table, label = (
            ("role", "role") if kind == str(CRITERIA_MANUAL) else ("competency", "competency")
        )
        mapped = rc.ids.get(table, value)
        if not mapped:
            rc.unmapped[f"{table} via badge_criteria_param"] += 1
            return False
        new = {"name": f"{label}_{mapped}", "value": mapped}
    else:  # a profile field, another badge, a cohort...: as it was
        new = {"name": name, "value": value}
    row.clear()
    row.update(critid=criterion.new_id, **new)
    return rc.writer.one("badge_criteria_param", row) is None


def _tag(rc: RestoreContext, rec: Record) -> None:
    rawname = rec.values.get("rawname")
    if rawname:
        add_item_tag(
            rc, "core_badges", "badge", _badge_of(rec), int(rc.param("coursecontextid")), rawname
        )
