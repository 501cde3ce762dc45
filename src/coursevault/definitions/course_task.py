"""The course task: everything under course/ but the blocks
(``backup_course_task::build`` in backup/moodle2/backup_course_task.class.php).

Members, in Moodle's order: course.xml, enrolments.xml, roles.xml,
filters.xml, comments.xml, calendar.xml, (with the logs setting: logs.xml,
logstores.xml, loglastaccess.xml; definitions/course_logs.py), competencies.xml,
completiondefaults.xml, inforef.xml, contentbank.xml.  Between enrolments.xml
and roles.xml Moodle runs execution steps that only annotate (the course's
groups and groupings, the groups of annotated groupings, the question
categories of the course context); they run here at the same point, so the
inforef and the backup-wide annotations see the same ids in the same order.
contentbank.xml comes after inforef.xml, as in Moodle: its annotations reach
the final task but not the course's inforef.

The structures themselves are in definitions/course_structures.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote_plus

from coursevault.definitions import course_logs
from coursevault.definitions import course_structures as cs
from coursevault.definitions.context_members import comments_step, inforef_step, roles_structure
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested
from coursevault.structure.registry import LinkContext, Plugin, Step


def steps(ctx: TaskContext, plugin: Plugin | None = None) -> list[Step]:
    """The course task's members in ``backup_course_task::build`` order."""
    found = [
        Step("course.xml", build=cs.course_structure),
        Step("enrolments.xml", build=cs.enrolments_structure),
        Step("roles.xml", build=_after(_annotate_between, roles_structure)),
    ]
    if ctx.run.setting("filters"):
        found.append(Step("filters.xml", build=cs.filters_structure))
    if ctx.run.setting("comments"):
        found.append(comments_step())
    if ctx.run.setting("calendarevents"):
        found.append(Step("calendar.xml", build=cs.calendar_structure))
    if ctx.run.setting("logs"):
        found += [Step("logs.xml", build=course_logs.legacy_logs_structure),
                  Step("logstores.xml", build=course_logs.logstores_structure),
                  Step("loglastaccess.xml", build=course_logs.loglastaccess_structure)]
    if cs.competencies_enabled(ctx):
        found.append(Step("competencies.xml", build=cs.competencies_structure))
    if cs.completion_enabled(ctx):
        found.append(Step("completiondefaults.xml", build=cs.completion_defaults_structure))
    found.append(inforef_step())
    if ctx.run.setting("contentbankcontent"):
        found.append(Step("contentbank.xml", build=cs.contentbank_structure))
    return found


def _annotate_between(ctx: TaskContext) -> None:
    """The execution steps between enrolments.xml and roles.xml:
    ``backup_enrolments_execution_step``, ``backup_annotate_course_groups_and_groupings``,
    ``backup_annotate_groups_from_groupings`` and
    ``backup_calculate_question_categories``."""
    reader, courseid = ctx.reader, ctx.param("courseid")
    _annotate_enrol_custom_fields(ctx)
    if ctx.run.setting("groups"):
        ctx.annotate("group", (r["id"] for r in reader.rows(
            "groups", {"courseid": courseid}, columns=("id",))))
        ctx.annotate("grouping", (r["id"] for r in reader.rows(
            "groupings", {"courseid": courseid}, columns=("id",))))
        groupings = ctx.ids.get("grouping")
        if groupings:
            ctx.annotate("group", (r["groupid"] for r in reader.rows(
                "groupings_groups", {"groupingid": groupings}, columns=("groupid",))))
    if ctx.run.setting("questionbank"):
        # backup_question_dbops::calculate_question_categories for the course
        # context: no question is annotated yet, so only its own categories
        ctx.annotate("question_category", (r["id"] for r in reader.rows(
            "question_categories", {"contextid": ctx.param("contextid")}, columns=("id",))))


# enrol plugins whose backup_annotate_custom_fields annotates customint2 as a group
_ENROL_GROUP_FIELD = ("cohort", "meta")


def _annotate_enrol_custom_fields(ctx: TaskContext) -> None:
    """``backup_enrolments_execution_step``: each enabled enrol plugin
    annotates its instances' custom fields -- cohort sync and course meta
    link name the group they add members to in ``customint2``."""
    row = ctx.run.config("enrol_plugins_enabled")
    enabled = set(str(row["value"] or "").split(",")) if row else set()
    wanted = enabled.intersection(_ENROL_GROUP_FIELD)
    if wanted:
        ctx.annotate("group", (r["customint2"] for r in ctx.reader.rows(
            "enrol", {"courseid": ctx.param("courseid")}, columns=("enrol", "customint2"))
            if r["enrol"] in wanted))


def _after(
    action: Callable[[TaskContext], None], build: Callable[[TaskContext], Nested]
) -> Callable[[TaskContext], Nested]:
    """``build`` preceded by an execution step that only annotates."""

    def run(ctx: TaskContext) -> Nested:
        action(ctx)
        return build(ctx)

    return run


# backup_course_task::encode_content_links: (marker, path, urlencoded)
_COURSE_LINKS = (
    ("COURSEVIEWBYID", "/course/view.php?id=", False),
    ("COURSESECTIONBYID", "/course/section.php?id=", False),
    ("GRADEINDEXBYID", "/grade/index.php?id=", False),
    ("GRADEREPORTINDEXBYID", "/grade/report/index.php?id=", False),
    ("BADGESVIEWBYID", "/badges/view.php?type=2&id=", False),
    ("USERINDEXVIEWBYID", "/user/index.php?id=", False),
    ("PLUGINFILEBYCONTEXT", "/pluginfile.php/", False),
    ("PLUGINFILEBYCONTEXTURLENCODED", "/pluginfile.php/", True),
)


def _php_urlencode(text: str) -> str:
    """PHP's ``urlencode``: like quote_plus but ``~`` is encoded too."""
    return quote_plus(text, safe="").replace("~", "%7E")


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_course_task::encode_content_links``: links to any course's
    pages, and pluginfile.php links of any context, become markers
    (``$@COURSEVIEWBYID*12@$``); https and http forms of the site's address
    both count (``encode_links_helper``)."""
    https = link.wwwroot.replace("http://", "https://")
    http = link.wwwroot.replace("https://", "http://")
    for name, path, urlencoded in _COURSE_LINKS:
        for root in (https, http):
            base = root + path
            if urlencoded:
                base = _php_urlencode(base)
            if base not in content:
                continue
            content = re.sub("(" + re.escape(base) + ")([0-9]+)",
                             "$@" + name + r"*\g<2>@$", content)
    return content
