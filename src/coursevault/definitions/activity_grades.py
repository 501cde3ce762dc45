"""An activity's gradebook members: competencies.xml, grades.xml, grading.xml
and grade_history.xml.

Mirrors, from backup/moodle2/backup_stepslib.php (Moodle 4.5):
``backup_activity_competencies_structure_step``,
``backup_activity_grade_items_to_ids`` (the module's grade items, annotated
before grades.xml is written: inforef.xml lists them),
``backup_activity_grades_structure_step``,
``backup_activity_grading_structure_step`` (only for modules that support
advanced grading; the gradingform subplugins add their definition and
instance data) and ``backup_activity_grade_history_structure_step``.
Scales and outcomes are annotated straight as ``scalefinal`` /
``outcomefinal``, as Moodle does (they belong to more than one course).
"""

from __future__ import annotations

from collections.abc import Iterator

from coursevault.structure import registry
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import NO_ROWS, In, Nested, Param, Row, Rows, Sql, Table, Up
from coursevault.structure.engine import Instance, sql_rows, user_density
from coursevault.structure.prefetch import USER_DATA_WINDOW, PrefetchWindow
from coursevault.structure.registry import Plugin, Step

# modules of Moodle 4.5 that declare FEATURE_ADVANCED_GRADING; a plugin
# outside core says so with extra={"advanced_grading": True}
ADVANCED_GRADING = frozenset({"assign", "forum"})

GRADE_ITEM_FIELDS = (
    "categoryid", "itemname", "itemtype", "itemmodule", "iteminstance", "itemnumber",
    "iteminfo", "idnumber", "calculation", "gradetype", "grademax", "grademin", "scaleid",
    "outcomeid", "gradepass", "multfactor", "plusfactor", "aggregationcoef",
    "aggregationcoef2", "weightoverride", "sortorder", "display", "decimals", "hidden",
    "locked", "locktime", "needsupdate", "timecreated", "timemodified",
)
GRADE_GRADE_FIELDS = (
    "userid", "rawgrade", "rawgrademax", "rawgrademin", "rawscaleid", "usermodified",
    "finalgrade", "hidden", "locked", "locktime", "exported", "overridden", "excluded",
    "feedback", "feedbackformat", "information", "informationformat", "timecreated",
    "timemodified", "aggregationstatus", "aggregationweight",
)
HISTORY_FIELDS = (
    "action", "oldid", "source", "loggeduser", "itemid", "userid", "rawgrade",
    "rawgrademax", "rawgrademin", "rawscaleid", "usermodified", "finalgrade", "hidden",
    "locked", "locktime", "exported", "overridden", "excluded", "feedback",
    "feedbackformat", "information", "informationformat", "timemodified",
)


def competency_steps(ctx: TaskContext) -> list[Step]:
    """competencies.xml, when the setting is on and competencies are enabled
    on the site (the step's ``execute_condition``)."""
    row = ctx.run.plugin_config("core_competency", "enabled")
    if row is not None and row["value"] in ("", "0", None):
        return []
    return [Step("competencies.xml", build=competencies_structure, when="competencies")]


def competencies_structure(ctx: TaskContext) -> Nested:
    competency = Nested(
        "competency",
        fields=("id", "idnumber", "ruleoutcome", "sortorder", "frameworkid",
                "frameworkidnumber", "overridegrade"),
        source=Rows(_competency_rows),
    )
    return Nested("course_module_competencies", children=[
        Nested("competencies", children=[competency]),
    ])


def _competency_rows(ctx: TaskContext, _parent: Instance | None) -> list[Row]:
    return sql_rows(Sql(
        "SELECT cmc.cmid AS cv_key, c.id, c.idnumber, cmc.ruleoutcome, cmc.overridegrade,"
        " cmc.sortorder, f.id AS frameworkid, f.idnumber AS frameworkidnumber"
        " FROM {competency_modulecomp} cmc"
        " JOIN {competency} c ON c.id = cmc.competencyid"
        " JOIN {competency_framework} f ON f.id = c.competencyframeworkid"
        " WHERE cmc.cmid IN (?) ORDER BY cmc.sortorder",
        [In(Param("moduleid"))], key="cv_key"), ctx)


def grade_steps(ctx: TaskContext, plugin: Plugin) -> list[Step]:
    """grades.xml, grading.xml (advanced grading modules only) and
    grade_history.xml, with the grade items annotated first."""
    found = [Step("grades.xml", build=grades_structure)]
    if ctx.param("modulename") in ADVANCED_GRADING or plugin.extra.get("advanced_grading"):
        found.append(Step("grading.xml", build=grading_structure))
    found.append(Step("grade_history.xml", build=grade_history_structure))
    return found


def _course_grade_items(ctx: TaskContext) -> dict[tuple[str, str], list[Row]]:
    """Every module grade item of the course, by (itemmodule, iteminstance):
    one query for all activities, in the order each activity's own query
    (``grade_item::fetch_all``) gives -- checked key by key on the reference
    site on PostgreSQL and MariaDB."""
    memo = ctx.run.memo
    if "mod_grade_items" not in memo:
        grouped: dict[tuple[str, str], list[Row]] = {}
        for row in ctx.reader.rows("grade_items", {"courseid": ctx.param("courseid"),
                                                   "itemtype": "mod"}):
            grouped.setdefault((str(row["itemmodule"]), str(row["iteminstance"])), []).append(row)
        memo["mod_grade_items"] = grouped
    found: dict[tuple[str, str], list[Row]] = memo["mod_grade_items"]
    return found


def _grade_items(ctx: TaskContext) -> list[Row]:
    """``grade_item::fetch_all`` of the module (database order); annotating
    them is ``backup_activity_grade_items_to_ids``."""
    key = (str(ctx.param("modulename")), str(ctx.param("activityid")))
    return _course_grade_items(ctx).get(key, [])


def _grade_rows(ctx: TaskContext, parent: Instance | None) -> list[Row]:
    """The grades of the parent grade item (Moodle: ``itemid =
    VAR_PARENTID``).  Those of a window of the course's module grade items
    are read at once (one query where there was one per activity, and not
    the whole course's grades in memory: engine.PrefetchWindow); within one
    item they come in the order the per-item query gives, as checked item by
    item on the reference site on PostgreSQL and MariaDB."""
    memo = ctx.run.memo
    window: PrefetchWindow | None = memo.get("grade_grades")
    if window is None:
        # the items in the order the plan's tasks will ask for them
        by_key = _course_grade_items(ctx)
        order = [(t.params["modulename"], t.params["activityid"])
                 for t in memo.get("tasks", []) if "activityid" in t.params]
        window = PrefetchWindow(  # grades are user data: the smaller window
            [str(r["id"]) for key in order for r in by_key.get(key, [])], USER_DATA_WINDOW,
            user_density(ctx))
        memo["grade_grades"] = window
    assert parent is not None
    itemid = str(parent.value(Up("id")))  # the grade_item row above the wrapper
    if itemid not in window.position:  # an item the course-wide read did not see
        return list(ctx.reader.rows("grade_grades", {"itemid": itemid}))

    def fetch(items: list[str]) -> Iterator[tuple[str, Row]]:
        for row in ctx.reader.rows("grade_grades", {"itemid": items}):
            yield str(row["itemid"]), row

    return window.rows(itemid, fetch)


def grades_structure(ctx: TaskContext) -> Nested:
    """grades.xml (``backup_activity_grades_structure_step``)."""
    items = _grade_items(ctx)
    ctx.annotate("grade_item", (r["id"] for r in items))
    item = Nested(
        "grade_item",
        attrs=("id",),
        fields=GRADE_ITEM_FIELDS,
        source=Rows(lambda _ctx, _parent: [dict(r) for r in items]),
        annotate=[("scalefinal", "scaleid"), ("outcomefinal", "outcomeid")],
    )
    grade = Nested(
        "grade_grade",
        attrs=("id",),
        fields=GRADE_GRADE_FIELDS,
        source=Rows(_grade_rows),
        userinfo=True,
        annotate=[("scalefinal", "rawscaleid"), ("user", "userid"), ("user", "usermodified")],
    )
    grade.annotate_files("grade", "feedback", "id")
    item.add(Nested("grade_grades", children=[grade]))
    letter = Nested(
        "grade_letter",
        attrs=("id",),
        fields=("lowerboundary", "letter"),
        source=Table("grade_letters", {"contextid": Param("contextid")}),
    )
    return Nested("activity_gradebook", children=[
        Nested("grade_items", children=[item]),
        Nested("grade_letters", children=[letter]),
    ])


def grade_history_structure(ctx: TaskContext) -> Nested:
    """grade_history.xml (``backup_activity_grade_history_structure_step``):
    rows only with user data and the grade_histories setting."""
    grade = Nested(
        "grade_grade",
        attrs=("id",),
        fields=HISTORY_FIELDS,
        annotate=[("scalefinal", "rawscaleid"), ("user", "loggeduser"), ("user", "userid"),
                  ("user", "usermodified")],
    )
    if ctx.users and ctx.run.setting("grade_histories"):
        ids = [r["id"] for r in _grade_items(ctx)]
        grade.set_source(Rows(lambda c, _p: list(c.reader.rows(
            "grade_grades_history", {"itemid": ids})) if ids else []))
    else:
        grade.set_source(NO_ROWS)
    grade.annotate_files("grade", "historyfeedback", "id")
    return Nested("grade_history", children=[Nested("grade_grades", children=[grade])])


def grading_structure(ctx: TaskContext) -> Nested:
    """grading.xml (``backup_activity_grading_structure_step``): the module's
    grading areas, their definitions with each gradingform's data, and the
    instances (user data)."""
    area = Nested(
        "area",
        attrs=("id",),
        fields=("areaname", "activemethod"),
        source=Table("grading_areas", {"contextid": Param("contextid"),
                                       "component": "mod_" + str(ctx.param("modulename"))}),
    )
    definition = Nested(
        "definition",
        attrs=("id",),
        fields=("method", "name", "description", "descriptionformat", "status",
                "timecreated", "timemodified", "options"),
        source=Table("grading_definitions", {"areaid": Up("id")}),
    )
    definition.annotate_files("grading", "description", "id")
    forms = registry.subplugins("gradingform_")
    for name in sorted(forms):
        part = forms[name].extra.get("definition")
        if part is not None:
            definition.add(part(ctx))
    instance = Nested(
        "instance",
        attrs=("id",),
        fields=("raterid", "itemid", "rawgrade", "status", "feedback", "feedbackformat",
                "timemodified"),
        source=Table("grading_instances", {"definitionid": Up("id")}),
        userinfo=True,
        annotate=[("user", "raterid")],
    )
    for name in sorted(forms):
        part = forms[name].extra.get("instance")
        if part is not None:
            instance.add(part(ctx))
    definition.add(Nested("instances", children=[instance]))
    area.add(Nested("definitions", children=[definition]))
    return Nested("areas", children=[area])
