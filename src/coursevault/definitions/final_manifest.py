"""moodle_backup.xml: ``backup_main_structure_step`` (backup/moodle2/backup_stepslib.php)
with ``backup_controller_dbops::get_moodle_backup_information`` and
``backup_plan_dbops::get_default_backup_filename``.

What the backup is (name, versions, date, the site and course it came
from), what it holds (activities, sections, course, in plan order) and the
settings it was made with (the root settings, then each section's and
activity's ``included``/``userinfo`` in plan order).  The run-specific
values are the name and ``filename`` setting (they hold the minute), the
date and the backup id (random, as Moodle's).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from coursevault.definitions.final_annotations import final_ids, system_context_id
from coursevault.definitions.final_files import references_external
from coursevault.structure.context import TaskContext, site_hash
from coursevault.structure.elements import UNSET, Nested, Row, Rows

# the root task's settings, in the order backup_root_task::define_settings adds them
ROOT_SETTINGS = (
    "users", "anonymize", "role_assignments", "activities", "blocks", "files", "filters",
    "comments", "badges", "calendarevents", "userscompletion", "logs", "grade_histories",
    "questionbank", "groups", "competencies", "customfield", "contentbankcontent",
    "xapistate", "legacyfiles",
)
_INFO_FIELDS = (
    "name", "moodle_version", "moodle_release", "backup_version", "backup_release",
    "backup_date", "mnet_remoteusers", "include_files",
    "include_file_references_to_external_content", "original_wwwroot",
    "original_site_identifier_hash", "original_course_id", "original_course_format",
    "original_course_fullname", "original_course_shortname", "original_course_startdate",
    "original_course_enddate", "original_course_contextid", "original_system_contextid",
)


def backup_filename(ctx: TaskContext) -> str:
    """``get_default_backup_filename`` for a course backup made at the run's start."""
    course = ctx.run.course
    shortname = str(course["shortname"] or "").replace("&", "&amp;").replace(" ", "_")
    shortname = _clean_filename(shortname).strip("_").lower()
    moment = datetime.fromtimestamp(ctx.run.started, _site_zone(ctx))
    info = "" if ctx.users else "-nu"
    if ctx.users and ctx.run.setting("anonymize"):
        info = "-an"
    return (f"backup-moodle2-course-{course['id']}-{shortname}-"
            f"{moment.strftime('%Y%m%d-%H%M')}{info}.mbz")


def _clean_filename(text: str) -> str:
    """``clean_param(PARAM_FILE)``."""
    text = re.sub(r"[\x00-\x1f\x7f&<>\"`|':\\/]", "", text)
    return "" if text in (".", "..") else text


def _site_zone(ctx: TaskContext) -> ZoneInfo:
    """The zone ``userdate(..., 99)`` uses for the admin running the backup."""
    for name in ("forcetimezone", "timezone"):
        row = ctx.run.config(name)
        value = None if row is None else row["value"]
        if value and value != "99":
            try:
                return ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                break
    return ZoneInfo("UTC")


def information(ctx: TaskContext) -> Row:
    run, course = ctx.run, ctx.run.course
    site = run.site
    return {
        "name": backup_filename(ctx),
        "moodle_version": site.version, "moodle_release": site.release,
        "backup_version": site.backup_version, "backup_release": site.backup_release,
        "backup_date": str(run.started),
        "mnet_remoteusers": "1" if _remote_users(ctx) else "0",
        "include_files": "1" if run.setting("files") else "0",
        "include_file_references_to_external_content": "1" if references_external(ctx) else "0",
        "original_wwwroot": site.wwwroot,
        "original_site_identifier_hash": site_hash(site.siteidentifier),
        "original_course_id": str(course["id"]),
        "original_course_format": course["format"],
        "original_course_fullname": course["fullname"],
        "original_course_shortname": course["shortname"],
        "original_course_startdate": course["startdate"],
        "original_course_enddate": course["enddate"],
        "original_course_contextid": ctx.param("coursecontextid"),
        "original_system_contextid": system_context_id(ctx),
    }


def _remote_users(ctx: TaskContext) -> bool:
    """``backup_includes_mnet_remote_users``: a final user of another MNet host."""
    users = final_ids(ctx, "user")
    local = ctx.run.config("mnet_localhost_id")
    host = str(local["value"]) if local else "1"
    for start in range(0, len(users), 500):
        batch = users[start:start + 500]
        for row in ctx.reader.rows("user", {"id": batch}, columns=("mnethostid",)):
            if str(row["mnethostid"]) != host:
                return True
    return False


def contents(ctx: TaskContext) -> tuple[list[Row], list[Row], list[Row]]:
    """(activities, sections, course) of ``get_moodle_backup_information``."""
    names = {str(r["id"]): r for r in ctx.reader.rows(
        "course_sections", {"course": ctx.param("courseid")}, columns=("id", "name", "section"))}
    activities: list[Row] = []
    sections: list[Row] = []
    for task in ctx.run.memo.get("tasks", []):
        facts = task.facts
        if "modulename" in facts:
            activities.append({
                "moduleid": facts["moduleid"], "sectionid": facts["sectionid"],
                "modulename": facts["modulename"], "title": facts.get("title", ""),
                "directory": task.directory, "insubsection": ""})
        elif "number" in facts:
            section = names.get(facts["sectionid"], {})
            name = section.get("name")
            title = facts["number"] if name in (None, "", "0") else name
            sections.append({"sectionid": facts["sectionid"], "title": title,
                             "directory": task.directory, "parentcmid": "", "modname": ""})
    course = [{"courseid": str(ctx.run.course["id"]), "title": ctx.run.course["shortname"],
               "directory": "course"}]
    return activities, sections, course


def settings(ctx: TaskContext, filename: str) -> list[Row]:
    """The root settings, then each section's and activity's, in plan order."""
    def flag(value: bool) -> str:
        return "1" if value else "0"

    rows: list[Row] = [_setting("root", "filename", filename),
                       _setting("root", "imscc11", "0")]
    rows += [_setting("root", name, flag(ctx.run.setting(name))) for name in ROOT_SETTINGS]
    users = ctx.users
    for task in ctx.run.memo.get("tasks", []):
        facts = task.facts
        if "modulename" in facts:
            key = f"{facts['modulename']}_{facts['moduleid']}"
            rows.append(_setting("activity", f"{key}_included", "1", activity=key))
            rows.append(_setting("activity", f"{key}_userinfo", flag(users), activity=key))
        elif "number" in facts:
            key = f"section_{facts['sectionid']}"
            rows.append(_setting("section", f"{key}_included", "1", section=key))
            rows.append(_setting("section", f"{key}_userinfo", flag(users), section=key))
    return rows


def _setting(level: str, name: str, value: str, *, section: str | None = None,
             activity: str | None = None) -> Row:
    return {"level": level, "section": UNSET if section is None else section,
            "activity": UNSET if activity is None else activity, "name": name, "value": value}


def manifest_structure(ctx: TaskContext) -> Nested:
    info = information(ctx)
    activities, sections, course = contents(ctx)

    def rows(data: list[Row]) -> Rows:
        return Rows(lambda _c, _p: data)

    parts: list[Nested] = []
    if activities:
        parts.append(Nested("activities", children=[Nested(
            "activity", fields=("moduleid", "sectionid", "modulename", "title", "directory",
                                "insubsection"), source=rows(activities))]))
    if sections:
        parts.append(Nested("sections", children=[Nested(
            "section", fields=("sectionid", "title", "directory", "parentcmid", "modname"),
            source=rows(sections))]))
    parts.append(Nested("course", fields=("courseid", "title", "directory"),
                        source=rows(course)))
    detail = Nested(
        "detail", attrs=("backup_id",),
        fields=("type", "format", "interactive", "mode", "execution", "executiontime"),
        source=rows([{"backup_id": uuid.uuid4().hex, "type": "course", "format": "moodle2",
                      "interactive": "1", "mode": "10", "execution": "1",
                      "executiontime": "0"}]))
    information_element = Nested(
        "information", fields=_INFO_FIELDS, source=rows([info]),
        children=[
            Nested("details", children=[detail]),
            Nested("contents", children=parts),
            Nested("settings", children=[Nested(
                "setting", fields=("level", "section", "activity", "name", "value"),
                source=rows(settings(ctx, str(info["name"]))))]),
        ])
    return Nested("moodle_backup", children=[information_element])
