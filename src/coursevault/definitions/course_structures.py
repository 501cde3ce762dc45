"""The course task's structures (backup/moodle2/backup_stepslib.php):
``backup_course_structure_step`` (course.xml), ``backup_enrolments_structure_step``,
``backup_filters_structure_step``, ``backup_calendarevents_structure_step``,
``backup_course_competencies_structure_step``,
``backup_completion_defaults_structure_step`` and
``backup_contentbankcontent_structure_step``.

Field lists are Moodle 4.5's, checked against the reference backups; sources
keep the database's order wherever Moodle reads without ORDER BY.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from coursevault.definitions.context_members import PENDING_INFOREF
from coursevault.structure.context import IdSet, TaskContext
from coursevault.structure.elements import FileArea, Nested, Param, Row, Rows, Sql, Table, Up

if TYPE_CHECKING:
    from coursevault.structure.engine import Instance

COURSE_FIELDS = (
    "shortname", "fullname", "idnumber", "summary", "summaryformat", "format", "showgrades",
    "newsitems", "startdate", "enddate", "marker", "maxbytes", "legacyfiles", "showreports",
    "visible", "groupmode", "groupmodeforce", "defaultgroupingid", "lang", "theme",
    "timecreated", "timemodified", "requested", "showactivitydates",
    "showcompletionconditions", "pdfexportfont", "enablecompletion", "completionnotify",
)


def course_structure(ctx: TaskContext) -> Nested:
    """course.xml: the course row with its context id, its category, tags,
    custom fields and course-level format options; annotates the default
    grouping and the course's summary, overview and legacy files."""
    course_row = dict(ctx.run.course)
    course_row["contextid"] = ctx.param("contextid")
    files = [FileArea("course", "summary"), FileArea("course", "overviewfiles")]
    if ctx.run.setting("legacyfiles"):
        files.append(FileArea("course", "legacy"))
    course = Nested(
        "course", attrs=("id", "contextid"), fields=COURSE_FIELDS,
        source=Rows(lambda _ctx, _parent: [course_row]),
        annotate=[("grouping", "defaultgroupingid")],
        files=files,
    )
    category = Nested(
        "category", attrs=("id",), fields=("name", "description"),
        source=Table("course_categories", {"id": Up("category")}),
    )
    tag = Nested(
        "tag", attrs=("id",), fields=("name", "rawname"),
        source=Sql("SELECT t.id, t.name, t.rawname FROM {tag} t "
                   "JOIN {tag_instance} ti ON ti.tagid = t.id "
                   "WHERE ti.itemtype = ? AND ti.itemid = ?", ["course", Up("id")]),
    )
    customfield = Nested(
        "customfield", attrs=("id",),
        fields=("shortname", "type", "value", "valueformat", "valuetrust"),
        source=Rows(_custom_fields),
    )
    option = Nested(
        "courseformatoption", fields=("format", "sectionid", "name", "value"),
        source=Sql("SELECT id, format, sectionid, name, value FROM {course_format_options} "
                   "WHERE courseid = ? AND sectionid = 0", [Up("id")]),
    )
    return course.add(
        category,
        Nested("tags", children=[tag]),
        Nested("customfields", children=[customfield]),
        Nested("courseformatoptions", children=[option]),
    )


# customfield data column holding each field type's value (data_controller::datafield)
_VALUE_COLUMN = {"checkbox": "intvalue", "date": "intvalue", "select": "intvalue",
                 "text": "charvalue", "textarea": "value", "number": "decvalue"}


def _custom_fields(ctx: TaskContext, _parent: Instance | None) -> Iterable[Row]:
    """``course_handler::get_instance_data_for_backup``: the course's custom
    field values that have data, in category then field order.  (No course
    of the reference site has custom fields: unverified against Moodle.)"""
    if not ctx.run.setting("customfield"):
        return []
    rows = ctx.reader.sql(
        "SELECT d.*, f.shortname, f.type FROM {customfield_data} d "
        "JOIN {customfield_field} f ON f.id = d.fieldid "
        "JOIN {customfield_category} c ON c.id = f.categoryid "
        "WHERE c.component = ? AND c.area = ? AND d.instanceid = ? "
        "ORDER BY c.sortorder, f.sortorder, f.id",
        ["core_course", "course", ctx.param("courseid")])
    out = []
    for row in rows:
        column = _VALUE_COLUMN.get(str(row["type"]), "value")
        out.append({**row, "value": row.get(column)})
    return out


def enrolments_structure(ctx: TaskContext) -> Nested:
    """enrolments.xml: the course's enrolment instances by sortorder, with
    their user enrolments when users are included."""
    enrolment = Nested(
        "enrolment", attrs=("id",),
        fields=("status", "userid", "timestart", "timeend", "modifierid", "timemodified"),
        source=Table("user_enrolments", {"enrolid": Up("id")}),
        userinfo=True,
        annotate=[("user", "userid")],
    )
    enrol = Nested(
        "enrol", attrs=("id",),
        fields=(
            "enrol", "status", "name", "enrolperiod", "enrolstartdate", "enrolenddate",
            "expirynotify", "expirythreshold", "notifyall", "password", "cost", "currency",
            "roleid", *(f"customint{i}" for i in range(1, 9)),
            "customchar1", "customchar2", "customchar3", "customdec1", "customdec2",
            "customtext1", "customtext2", "customtext3", "customtext4",
            "timecreated", "timemodified",
        ),
        source=Table("enrol", {"courseid": Param("courseid")}, order="sortorder ASC"),
        annotate=[("role", "roleid")],
        children=[Nested("user_enrolments", children=[enrolment])],
    )
    return Nested("enrolments", children=[Nested("enrols", children=[enrol])])


def filters_structure(ctx: TaskContext) -> Nested:
    """filters.xml: ``filter_get_all_local_settings`` of the context --
    active states by filter name, configs by filter and name."""
    active = Nested(
        "filter_active", fields=("filter", "active"),
        source=Table("filter_active", {"contextid": Param("contextid")}, order="filter"),
    )
    config = Nested(
        "filter_config", fields=("filter", "name", "value"),
        source=Rows(_filter_configs),
    )
    return Nested("filters", children=[
        Nested("filter_actives", children=[active]),
        Nested("filter_configs", children=[config]),
    ])


def _filter_configs(ctx: TaskContext, _parent: Instance | None) -> Iterable[Row]:
    """``$DB->get_records('filter_config', ..., 'filter,name', 'filter,name,value')``:
    records keyed by their first column, so a filter with several settings
    keeps only its last (PHP array semantics, as Moodle writes them)."""
    by_filter: dict[str, Row] = {}
    for row in ctx.reader.rows("filter_config", {"contextid": ctx.param("contextid")},
                               order="filter, name", columns=("filter", "name", "value")):
        by_filter[str(row["filter"])] = row
    return list(by_filter.values())


EVENT_FIELDS = (
    "name", "description", "format", "courseid", "groupid", "userid", "repeatid",
    "modulename", "instance", "type", "eventtype", "timestart", "timeduration", "timesort",
    "visible", "uuid", "sequence", "timemodified", "priority", "location",
)


def calendar_structure(ctx: TaskContext) -> Nested:
    """calendar.xml (``course_calendar``): the course's course and group events."""
    event = Nested(
        "event", attrs=("id",), fields=EVENT_FIELDS,
        source=Sql("SELECT * FROM {event} WHERE courseid = ? "
                   "AND (eventtype = 'course' OR eventtype = 'group')", [Param("courseid")]),
        annotate=[("user", "userid"), ("group", "groupid")],
        files=[FileArea("calendar", "event_description", "id")],
    )
    return Nested("events", children=[event])


def competencies_enabled(ctx: TaskContext) -> bool:
    """``execute_condition``: competencies are on for the site and in the backup."""
    if not ctx.run.setting("competencies"):
        return False
    row = ctx.run.plugin_config("core_competency", "enabled")
    return bool(row and row["value"] not in (None, "", "0"))


def competencies_structure(ctx: TaskContext) -> Nested:
    """competencies.xml: the course's competency settings, its competencies by
    sortorder, and (with users) the users' course ratings."""
    settings = Nested(
        "settings", attrs=("id",), fields=("pushratingstouserplans",),
        source=Sql("SELECT s.pushratingstouserplans FROM {competency_coursecompsetting} s "
                   "WHERE s.courseid = ?", [Param("courseid")]),
    )
    competency = Nested(
        "competency",
        fields=("id", "idnumber", "ruleoutcome", "sortorder", "frameworkid",
                "frameworkidnumber"),
        source=Sql("SELECT c.id, c.idnumber, cc.ruleoutcome, cc.sortorder, "
                   "f.id AS frameworkid, f.idnumber AS frameworkidnumber "
                   "FROM {competency_coursecomp} cc "
                   "JOIN {competency} c ON c.id = cc.competencyid "
                   "JOIN {competency_framework} f ON f.id = c.competencyframeworkid "
                   "WHERE cc.courseid = ? ORDER BY cc.sortorder", [Param("courseid")]),
    )
    usercomps = Nested("user_competencies")
    if ctx.users:
        usercomps.add(Nested(
            "user_competency", fields=("userid", "competencyid", "proficiency", "grade"),
            source=Sql("SELECT ucc.userid, ucc.competencyid, ucc.proficiency, ucc.grade "
                       "FROM {competency_usercompcourse} ucc "
                       "WHERE ucc.courseid = ? AND ucc.grade IS NOT NULL",
                       [Param("courseid")]),
            annotate=[("user", "userid")],
        ))
    return Nested("course_competencies", children=[
        settings, Nested("competencies", children=[competency]), usercomps,
    ])


def completion_enabled(ctx: TaskContext) -> bool:
    """``completion_info::is_enabled_for_site()``: $CFG->enablecompletion."""
    row = ctx.run.config("enablecompletion")
    return bool(row and row["value"] not in (None, "", "0"))


def completion_defaults_structure(ctx: TaskContext) -> Nested:
    """completiondefaults.xml: the course's activity completion defaults,
    naming modules by name so another site can restore them."""
    default = Nested(
        "course_completion_default", attrs=("id",),
        fields=("modulename", "completion", "completionview", "completionusegrade",
                "completionpassgrade", "completionexpected", "customrules"),
        source=Sql("SELECT d.id, m.name AS modulename, d.completion, d.completionview, "
                   "d.completionusegrade, d.completionpassgrade, d.completionexpected, "
                   "d.customrules FROM {course_completion_defaults} d "
                   "JOIN {modules} m ON d.module = m.id WHERE d.course = ?",
                   [Param("courseid")]),
    )
    return Nested("course_completion_defaults", children=[default])


def _contentbank_rows(ctx: TaskContext, _parent: Instance | None) -> Iterable[Row]:
    """The course context's content bank, in the database's order.

    Moodle writes contentbank.xml after the course's inforef.xml has been
    written and its annotations moved to the final ones, so what this step
    annotates stays pending in backup_ids_temp and the next task's inforef
    (the first section's) lists it: :data:`PENDING_INFOREF` hands it on."""
    rows = list(ctx.reader.rows("contentbank_content", {"contextid": ctx.param("contextid")}))
    pending = IdSet()
    for row in rows:
        pending.add("user", row["usercreated"])
        pending.add("user", row["usermodified"])
        for fileid in ctx.run.files_of(ctx.param("contextid"), "contentbank", "public",
                                       row["id"]):
            pending.add("file", fileid)
    if pending.items:
        ctx.run.memo[PENDING_INFOREF] = pending
    return rows


def contentbank_structure(ctx: TaskContext) -> Nested:
    """contentbank.xml: the content bank of the course context."""
    content = Nested(
        "content", attrs=("id",), fields=("name", "contenttype", "instanceid", "configdata", "usercreated",
                "usermodified", "timecreated", "timemodified"),
        source=Rows(_contentbank_rows),
        annotate=[("user", "usercreated"), ("user", "usermodified")],
        files=[FileArea("contentbank", "public", "id")],
    )
    return Nested("contents", children=[content])
