"""The course, its sections and its course modules, as Moodle needs them.

``restore_course_structure_step``, ``restore_section_structure_step`` and
``restore_module_structure_step`` (backup/moodle2/restore_stepslib.php):
the course row under unique names in its category with its context (path
and depth below the category's), its format options, the sections with
their own options, and one ``course_modules`` row and module context per
activity.  What names ids of rows restored later -- a section's
``sequence``, ``availability`` conditions naming modules, grade items and
groups -- is written in :func:`finish_course`, once every id is known.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from coursevault.definitions.restore_common import restore_tags
from coursevault.errors import SiteDataError
from coursevault.structure.restore_engine import RestoreContext, note_markers, shift_dates
from coursevault.structure.reverse import NULL

CONTEXT_COURSE = 50
CONTEXT_MODULE = 70
CONTEXT_BLOCK = 80
_COURSE_SKIP = {
    "id",
    "category",
    "sortorder",
    "tags",
    "customfields",
    "courseformatoptions",
    "cacherev",
    "originalcourseid",
}


def finals(el: ET.Element) -> dict[str, str | None]:
    """The text children of an element (final elements), NULL as None."""
    out: dict[str, str | None] = {}
    for child in el:
        if len(child) == 0:
            text = child.text or ""
            out[child.tag] = None if text == NULL else text
    return out


def create_context(rc: RestoreContext, level: int, instance: int, parent: int) -> int:
    """A context row below ``parent``'s, with Moodle's path and depth."""
    row = rc.writer.one("context", {"id": parent}) if parent > 0 else None
    path, depth = (str(row["path"]), int(row["depth"])) if row else ("", 0)
    new = rc.writer.insert(
        "context",
        {
            "contextlevel": level,
            "instanceid": instance,
            "depth": depth + 1,
            "path": None,
            "locked": 0,
        },
    )
    rc.writer.update("context", new, {"path": f"{path}/{new}"})
    return new


def course_names(rc: RestoreContext, fullname: str, shortname: str) -> tuple[str, str]:
    """``restore_dbops::calculate_course_names``: when the short name is
    taken, ``" copy N"`` and ``"_N"`` with the first free N."""
    if rc.writer.one("course", {"shortname": shortname}) is None:
        return fullname, shortname
    n = 1
    while rc.writer.one("course", {"shortname": f"{shortname}_{n}"}) is not None:
        n += 1
    return f"{fullname} copy {n}", f"{shortname}_{n}"


def create_course(
    rc: RestoreContext,
    data: bytes,
    *,
    category: int | None,
    shortname: str | None,
    fullname: str | None,
    now: int,
    start_date: int | None = None,
) -> tuple[int, int]:
    """course.xml as a new course; (course id, course context id)."""
    root = ET.fromstring(data)
    values: dict[str, Any] = {k: v for k, v in finals(root).items() if k not in _COURSE_SKIP}
    if category is None:
        category = _default_category(rc, root)
    cat = rc.writer.one("course_categories", {"id": category})
    if cat is None:
        raise SiteDataError(f"course category {category} does not exist in the site")
    full, short = course_names(
        rc,
        fullname or str(values.get("fullname") or ""),
        shortname or str(values.get("shortname") or ""),
    )
    top = rc.writer.scalar(
        "SELECT MAX(sortorder) FROM {course} WHERE category = :c", {"c": category}
    )
    if start_date is not None:
        end = int(values.get("enddate") or 0)
        if end:
            values["enddate"] = end + start_date - int(values.get("startdate") or 0)
        values["startdate"] = start_date
    values.update(
        category=category,
        fullname=full,
        shortname=short,
        cacherev=now,
        sortorder=int(top or int(cat.get("sortorder") or 0)) + 1,
    )
    if values.get("idnumber") and rc.writer.one("course", {"idnumber": values["idnumber"]}):
        values["idnumber"] = ""  # process_course: an idnumber in use is not kept
    _installed_theme(rc, values)
    courseid = rc.writer.insert("course", values)
    note_markers(rc, "course", courseid, values)
    catctx = rc.writer.one("context", {"contextlevel": 40, "instanceid": category})
    ctxid = create_context(rc, CONTEXT_COURSE, courseid, int(catctx["id"]) if catctx else 0)
    rc.writer.update(
        "course_categories", category, {"coursecount": int(cat.get("coursecount") or 0) + 1}
    )
    restore_tags(rc, root.find("tags"), "core", "course", courseid, ctxid)
    for opt in root.iterfind("courseformatoptions/courseformatoption"):
        o = finals(opt)
        if o.get("sectionid") in (None, "0"):
            rc.writer.insert(
                "course_format_options",
                {
                    "courseid": courseid,
                    "format": o.get("format"),
                    "sectionid": 0,
                    "name": o.get("name"),
                    "value": o.get("value"),
                },
            )
    return courseid, ctxid


def _installed_theme(rc: RestoreContext, values: dict[str, Any]) -> None:
    """A course theme the site has not installed is dropped (the site's
    theme applies), as Moodle's restore drops it: its restore of the corpus's
    availability-setting course left ``theme`` empty for the backup's "osep"."""
    theme = str(values.get("theme") or "")
    if (
        theme
        and rc.writer.one("config_plugins", {"plugin": f"theme_{theme}", "name": "version"}) is None
    ):
        rc.warnings.append(
            f"course/course.xml: theme {theme!r} is not installed in this "
            "site: the course gets the site's"
        )
        values["theme"] = ""


def _default_category(rc: RestoreContext, root: ET.Element) -> int:
    """The backup's own category when this site has it, else the first top one."""
    el = root.find("category")
    if el is not None and el.get("id"):
        row = rc.writer.one("course_categories", {"id": el.get("id")})
        name = el.findtext("name")
        if row is not None and row.get("name") == name:
            return int(row["id"])
    first = rc.writer.scalar("SELECT MIN(id) FROM {course_categories} WHERE parent = 0")
    if first is None:
        raise SiteDataError("the site has no course category to restore into")
    return int(first)


def restore_section(rc: RestoreContext, data: bytes, over: int | None = None) -> int:
    """section.xml: a course_sections row (sequence and availability later);
    with ``over``, written over that existing row (--replace keeps section 0's
    id, as Moodle's restore into an emptied course does)."""
    root = ET.fromstring(data)
    v = finals(root)
    row: dict[str, Any] = {
        "course": rc.param("courseid"),
        "section": v.get("number"),
        "name": v.get("name"),
        "summary": v.get("summary"),
        "summaryformat": v.get("summaryformat"),
        "sequence": "",
        "visible": v.get("visible"),
        "availability": None,
        "component": v.get("component"),
        "itemid": v.get("itemid"),
        "timemodified": v.get("timemodified"),
    }
    if over is None:
        new = rc.writer.insert("course_sections", row)
    else:  # the kept row's course and number stay
        del row["course"], row["section"]
        rc.writer.update("course_sections", over, row)
        new = over
    note_markers(rc, "course_sections", new, row)
    rc.ids.set("course_sections", root.get("id"), new)
    rc.later.setdefault("sections", []).append(
        (
            new,
            v.get("sequence") or "",
            v.get("availabilityjson"),
            v.get("component"),
            v.get("itemid"),
        )
    )
    for opt in root.iterfind("course_format_options/course_format_option"):
        o = finals(opt)
        rc.writer.insert(
            "course_format_options",
            {
                "courseid": rc.param("courseid"),
                "format": o.get("format"),
                "sectionid": new,
                "name": o.get("name"),
                "value": o.get("value"),
            },
        )
    return new


def module_id(rc: RestoreContext, modulename: str) -> int | None:
    """The site's module of that name (its modules read once a run: a query
    per activity was a third of gen_s's dry run)."""
    modules = rc.known.get("modules")
    if modules is None:
        modules = rc.known["modules"] = {
            str(row["name"]): int(row["id"])
            for row in reversed(list(rc.writer.rows("modules", {}, ["id", "name"])))
        }
    found: int | None = modules.get(modulename)
    return found


def restore_module(rc: RestoreContext, data: bytes, module: int) -> tuple[int, int]:
    """module.xml: the course_modules row (instance set once the activity is
    written) and the module's context; (cm id, context id)."""
    root = ET.fromstring(data)
    v = finals(root)
    section = rc.ids.get("course_sections", v.get("sectionid"))
    if section is None:
        raise SiteDataError(
            f"module {root.get('id')}: section {v.get('sectionid')} is not in the backup"
        )
    row: dict[str, Any] = {
        k: val for k, val in v.items() if k not in ("modulename", "sectionid", "sectionnumber")
    }
    row.update(
        course=rc.param("courseid"),
        module=module,
        instance=0,
        section=section,
        availability=None,
        deletioninprogress=0,
        groupingid=rc.map_ref("groupings", v.get("groupingid"), column="groupingid"),
    )
    if rc.date_offset and rc.is_date is not None:
        shift_dates(rc, "course_modules", row)
    cmid = rc.writer.insert("course_modules", row)
    rc.ids.set("course_modules", root.get("id"), cmid)
    ctxid = create_context(rc, CONTEXT_MODULE, cmid, int(rc.param("coursecontextid")))
    restore_tags(rc, root.find("tags"), "core", "course_modules", cmid, ctxid)
    if v.get("availability"):
        rc.later.setdefault("cm_availability", []).append((cmid, v["availability"]))
    return cmid, ctxid


def finish_course(rc: RestoreContext, courseid: int) -> None:
    """Section sequences and availability, once modules and groups have ids."""
    for new, sequence, availability, component, itemid in rc.later.get("sections", []):
        cms = [rc.ids.get("course_modules", old) for old in sequence.split(",") if old]
        values: dict[str, Any] = {"sequence": ",".join(str(c) for c in cms if c)}
        if availability:
            values["availability"] = remap_availability(rc, availability)
        if component == "mod_subsection" and itemid:
            values["itemid"] = rc.ids.get("subsection", itemid) or itemid
        rc.writer.update("course_sections", new, values)
    for cmid, availability in rc.later.get("cm_availability", []):
        rc.writer.update(
            "course_modules", cmid, {"availability": remap_availability(rc, availability)}
        )


_AVAILABILITY_REFS = {
    "completion": ("cm", "course_modules"),
    "grade": ("id", "grade_items"),
    "group": ("id", "groups"),
    "grouping": ("id", "groupings"),
}


def remap_availability(rc: RestoreContext, text: str) -> str:
    """Ids inside an availability tree (``restore_activity_availability``):
    conditions on a module's completion, a grade item, a group or grouping
    name the restored ones; a condition whose target is not restored keeps
    its old id, as Moodle's restore leaves it (and Moodle shows it as
    missing)."""
    try:
        tree = json.loads(text)
    except ValueError:
        rc.warnings.append(f"availability {text[:40]!r} is not JSON: kept as it is")
        return text

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = _AVAILABILITY_REFS.get(str(node.get("type")))
            if ref is not None and ref[0] in node:
                new = rc.ids.get(ref[1], node[ref[0]])
                if new is not None:
                    node[ref[0]] = new
            for child in node.get("c", []) or []:
                walk(child)

    walk(tree)
    return json.dumps(tree, separators=(",", ":"))
