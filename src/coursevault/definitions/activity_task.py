"""The members every activity directory holds, in the order Moodle writes them.

Mirrors ``backup_activity_task::build()`` (backup/moodle2/backup_activity_task.class.php)
of Moodle 4.5: module.xml, the module's own steps (``define_my_steps``),
roles.xml, filters.xml, comments.xml, completion.xml, calendar.xml,
competencies.xml, grades.xml, grading.xml, grade_history.xml, xapistate.xml
and inforef.xml.  The order matters beyond the file list: annotations are
recorded in step order, and inforef.xml lists them in that order (Moodle's
``backup_ids_temp`` read back without ORDER BY is insertion order).

The common steps are in backup/moodle2/backup_stepslib.php; the gradebook
ones are in definitions/activity_grades.py.
"""

from __future__ import annotations

from collections.abc import Callable

from coursevault.definitions import activity_grades
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import NO_ROWS, In, Nested, Param, Row, Rows, Sql, Table, Value
from coursevault.structure.engine import Instance, sql_rows
from coursevault.structure.registry import Plugin, Step

# backup_helper::get_inforef_itemnames(), in the order inforef.xml lists them
INFOREF_ITEMS = ("user", "grouping", "group", "role", "file", "scale", "outcome",
                 "grade_item", "question_category")


def steps(ctx: TaskContext, plugin: Plugin) -> list[Step]:
    """Every member of the activity's directory (``backup_activity_task::build``)."""
    if not ctx.run.setting("activities"):
        return []
    found = [Step("module.xml", build=module_structure)]
    found += plugin.steps(ctx)
    found.append(Step("roles.xml", build=roles_structure))
    found.append(Step("filters.xml", build=filters_structure, when="filters"))
    found.append(Step("comments.xml", build=comments_structure, when="comments"))
    if _site_config(ctx, "enablecompletion") not in (None, "", "0"):
        found.append(Step("completion.xml", build=userscompletion_structure,
                          when="userscompletion"))
    found.append(Step("calendar.xml", build=calendar_structure, when="calendarevents"))
    found += activity_grades.competency_steps(ctx)
    found += activity_grades.grade_steps(ctx, plugin)
    found.append(Step("xapistate.xml", build=xapistate_structure, when="xapistate"))
    found.append(Step("inforef.xml", build=inforef_structure))
    return found


def _site_config(ctx: TaskContext, name: str) -> str | None:
    """A ``$CFG`` value from the config table, read once per run."""
    memo: dict[str, str | None] = ctx.run.memo.setdefault("site_config", {})
    if name not in memo:
        row = ctx.run.config(name)
        memo[name] = None if row is None else row["value"]
    return memo[name]


def module_structure(ctx: TaskContext) -> Nested:
    """module.xml (``backup_module_structure_step``): the course_modules row,
    the module's version and section, and its tags.  The groups of the
    module's grouping are annotated right after, as
    ``backup_annotate_groups_from_groupings`` does (when groups are backed up)."""
    module = Nested(
        "module",
        attrs=("id", "version"),
        fields=(
            "modulename", "sectionid", "sectionnumber", "idnumber", "added", "score",
            "indent", "visible", "visibleoncoursepage", "visibleold", "groupmode",
            "groupingid", "completion", "completiongradeitemnumber", "completionpassgrade",
            "completionview", "completionexpected", "availability", "showdescription",
            "downloadcontent", "lang",
        ),
        source=Rows(_module_rows),
        annotate=[("grouping", "groupingid")],
    )
    tag = Nested(
        "tag",
        attrs=("id",),
        fields=("name", "rawname"),
        source=Sql(
            "SELECT ti.itemid AS cv_key, t.id, t.name, t.rawname FROM {tag} t"
            " JOIN {tag_instance} ti ON ti.tagid = t.id"
            " WHERE ti.itemtype = 'course_modules' AND ti.component = 'core'"
            " AND ti.itemid IN (?)",
            [In(Param("moduleid"))], key="cv_key",
        ),
    )
    return module.add(Nested("tags", children=[tag]))


def _module_rows(ctx: TaskContext, _parent: Instance | None) -> list[Row]:
    # one row per module: read for all the plan's modules at once
    rows = sql_rows(Sql(
        "SELECT cm.id AS cv_key, cm.*, cp.value AS version, m.name AS modulename,"
        " s.id AS sectionid, s.section AS sectionnumber"
        " FROM {course_modules} cm"
        " JOIN {modules} m ON m.id = cm.module"
        " JOIN {config_plugins} cp ON cp.plugin = CONCAT('mod_', m.name) AND cp.name = 'version'"
        " JOIN {course_sections} s ON s.id = cm.section"
        " WHERE cm.id IN (?)",
        [In(Param("moduleid"))], key="cv_key"), ctx)
    if ctx.run.setting("groups"):
        for row in rows:
            if row.get("groupingid") not in (None, "", "0"):
                ctx.annotate("group", (
                    r["groupid"] for r in ctx.reader.rows(
                        "groupings_groups", {"groupingid": row["groupingid"]},
                        columns=("groupid",))
                ))
    return rows


def roles_structure(ctx: TaskContext) -> Nested:
    """roles.xml (``backup_roles_structure_step``): overrides always, role
    assignments when the role_assignments setting is on."""
    override = Nested(
        "override",
        attrs=("id",),
        fields=("roleid", "capability", "permission", "timemodified", "modifierid"),
        source=Table("role_capabilities", {"contextid": Param("contextid")}),
        annotate=[("role", "roleid")],
    )
    assignment = Nested(
        "assignment",
        attrs=("id",),
        fields=("roleid", "userid", "timemodified", "modifierid", "component", "itemid",
                "sortorder"),
        annotate=[("role", "roleid"), ("user", "userid")],
    )
    if ctx.run.setting("role_assignments"):
        assignment.set_source(Table("role_assignments", {"contextid": Param("contextid")}))
    else:
        assignment.set_source(NO_ROWS)
    return Nested("roles", children=[
        Nested("role_overrides", children=[override]),
        Nested("role_assignments", children=[assignment]),
    ])


def filters_structure(ctx: TaskContext) -> Nested:
    """filters.xml (``backup_filters_structure_step``, from
    ``filter_get_all_local_settings``: sorted by filter, then name)."""
    active = Nested(
        "filter_active",
        fields=("filter", "active"),
        source=Table("filter_active", {"contextid": Param("contextid")}, order="filter"),
    )
    config = Nested(
        "filter_config",
        fields=("filter", "name", "value"),
        source=Table("filter_config", {"contextid": Param("contextid")}, order="filter, name"),
    )
    return Nested("filters", children=[
        Nested("filter_actives", children=[active]),
        Nested("filter_configs", children=[config]),
    ])


def comments_structure(ctx: TaskContext) -> Nested:
    """comments.xml (``backup_comments_structure_step``)."""
    comment = Nested(
        "comment",
        attrs=("id",),
        fields=("component", "commentarea", "itemid", "content", "format", "userid",
                "timecreated"),
        source=Table("comments", {"contextid": Param("contextid")}),
        annotate=[("user", "userid")],
    )
    return Nested("comments", children=[comment])


def userscompletion_structure(ctx: TaskContext) -> Nested:
    """completion.xml (``backup_userscompletion_structure_step``)."""
    completion = Nested(
        "completion",
        attrs=("id",),
        fields=("userid", "completionstate", "timemodified"),
        source=Table("course_modules_completion", {"coursemoduleid": Param("moduleid")}),
        annotate=[("user", "userid")],
    )
    view = Nested(
        "completionview",
        attrs=("id",),
        fields=("userid", "timecreated"),
        source=Table("course_modules_viewed", {"coursemoduleid": Param("moduleid")}),
        annotate=[("user", "userid")],
    )
    return Nested("completions", children=[
        completion, Nested("completionviews", children=[view]),
    ])


def calendar_structure(ctx: TaskContext) -> Nested:
    """calendar.xml (``backup_calendarevents_structure_step``, activity form)."""
    event = Nested(
        "event",
        attrs=("id",),
        fields=("name", "description", "format", "courseid", "groupid", "userid", "repeatid",
                "modulename", "instance", "type", "eventtype", "timestart", "timeduration",
                "timesort", "visible", "uuid", "sequence", "timemodified", "priority",
                "location"),
        source=Rows(_event_rows),
        annotate=[("user", "userid"), ("group", "groupid")],
    )
    event.annotate_files("calendar", "event_description", "id")
    return Nested("events", children=[event])


def _event_rows(ctx: TaskContext, _parent: Instance | None) -> list[Row]:
    """The module's events but its action events (type 1); without user
    data only the course's own, which leaves out user overrides."""
    sql = ("SELECT e.instance AS cv_key, e.* FROM {event} e"
           " WHERE e.instance IN (?) AND e.type <> 1 AND e.modulename = ?")
    params: list[Value | In] = [In(Param("activityid")), Param("modulename")]
    if not ctx.users:
        sql += " AND e.courseid = ?"
        params.append(Param("courseid"))
    return sql_rows(Sql(sql, params, key="cv_key"), ctx)


def xapistate_structure(ctx: TaskContext) -> Nested:
    """xapistate.xml (``backup_xapistate_structure_step``): user data only."""
    state = Nested(
        "state",
        attrs=("id",),
        fields=("component", "userid", "itemid", "stateid", "statedata", "registration",
                "timecreated", "timemodified"),
        source=Table("xapi_states", {"itemid": Param("contextid")}),
        userinfo=True,
        annotate=[("user", "userid")],
    )
    return Nested("states", children=[state])


def inforef_structure(ctx: TaskContext) -> Nested:
    """inforef.xml (``backup_inforef_structure_step``): what this task
    annotated, per item type; a type nothing annotated is left out.

    Moodle reads them back without ORDER BY from its temp table, and
    PostgreSQL answers through the (backupid, itemname, itemid) unique
    index: ascending ids.  Every inforef.xml of the reference site is in
    that order but one (rich's scorm, late in a large backup, where the
    planner chose another index and returned insertion order), so
    ascending ids it is."""
    root = Nested("inforef")
    for item in INFOREF_ITEMS:
        ids = sorted(ctx.ids.get(item), key=_numeric)
        if not ids:
            continue
        element = Nested(item, fields=("id",), source=Rows(_id_rows(ids)))
        root.add(Nested(item + "ref", children=[element]))
    return root


def _numeric(value: str) -> tuple[int, str]:
    return (int(value), "") if value.lstrip("-").isdigit() else (0, value)


def _id_rows(ids: list[str]) -> Callable[[TaskContext, Instance | None], list[Row]]:
    return lambda _ctx, _parent: [{"id": i} for i in ids]
