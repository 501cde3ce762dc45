"""gradebook.xml and grade_history.xml: ``backup_gradebook_structure_step`` and
``backup_grade_history_structure_step`` (backup/moodle2/backup_stepslib.php).

The course's own grade items (course, category, manual) with their grades
when users are included, the categories (parents first: Moodle sorts by
``parent``, and PostgreSQL puts the top category's NULL parent last), the
course's letters and grade settings.  Both files are written only when every
activity grade item of the course is in the backup
(``backup_plan_dbops::require_gradebook_backup``).
"""

from __future__ import annotations

from coursevault.definitions.activity_grades import GRADE_GRADE_FIELDS, GRADE_ITEM_FIELDS
from coursevault.moodledb.site import Row
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Rows, Sql, Table, Up
from coursevault.structure.engine import Instance

# the gradebook writes its items and grades with the fields activities do
ITEM_FIELDS = GRADE_ITEM_FIELDS
GRADE_FIELDS = GRADE_GRADE_FIELDS
_COURSE_ITEMS = "(gi.itemtype = 'manual' OR gi.itemtype = 'course' OR gi.itemtype = 'category')"


def gradebook_included(ctx: TaskContext) -> bool:
    """``require_gradebook_backup``: no activity grade item of the course is
    left out.  An activity's items are in the backup when its task is."""
    included = {
        (t.facts["modulename"], t.params["activityid"])
        for t in ctx.run.memo.get("tasks", []) if "modulename" in t.facts
    }
    for item in ctx.reader.rows("grade_items", {"courseid": ctx.param("courseid"),
                                                "itemtype": "mod"},
                                columns=("itemmodule", "iteminstance")):
        if (str(item["itemmodule"]), str(item["iteminstance"])) not in included:
            return False
    return True


def gradebook_structure(ctx: TaskContext) -> Nested:
    freeze = ctx.run.config(f"gradebook_calculations_freeze_{ctx.param('courseid')}")
    frozen = freeze is not None and bool(freeze["value"])
    attributes = Nested(
        "attributes", fields=("calculations_freeze",) if frozen else (),
        source=Rows(lambda _c, _p: [{"calculations_freeze": freeze["value"] if freeze else None}]),
    )
    category = Nested(
        "grade_category", attrs=("id",),
        fields=("parent", "depth", "path", "fullname", "aggregation", "keephigh", "droplow",
                "aggregateonlygraded", "aggregateoutcomes", "timecreated", "timemodified",
                "hidden"),
        source=Sql("SELECT gc.*, gi.sortorder FROM {grade_categories} gc "
                   "JOIN {grade_items} gi ON (gi.iteminstance = gc.id) "
                   "WHERE gc.courseid = ? AND (gi.itemtype='course' OR gi.itemtype='category') "
                   "ORDER BY gc.parent ASC", [Param("courseid")]),
    )
    grade = Nested("grade_grade", attrs=("id",), fields=GRADE_FIELDS,
                   source=Table("grade_grades", {"itemid": Up("id")}) if ctx.users else None,
                   annotate=[("userfinal", "userid")])
    item = Nested(
        "grade_item", attrs=("id",), fields=ITEM_FIELDS,
        source=Sql(f"SELECT * FROM {{grade_items}} gi WHERE gi.courseid = ? AND {_COURSE_ITEMS}",
                   [Param("courseid")]),
        annotate=[("scalefinal", "scaleid"), ("outcomefinal", "outcomeid")],
        children=[Nested("grade_grades", children=[grade] if ctx.users else [])],
    )
    # Moodle reads the letters without ORDER BY; on a fresh (never analysed)
    # table PostgreSQL answers through the unique (contextid, lowerboundary,
    # letter) index, as MySQL does: rich's letters (stored A, B, C, F) come
    # back F, C, B, A in Moodle's backup
    letter = Nested("grade_letter", attrs=("id",), fields=("lowerboundary", "letter"),
                    source=Table("grade_letters", {"contextid": Param("contextid")},
                                 order="lowerboundary, letter"))
    setting = Nested("grade_setting", attrs=("id",), fields=("name", "value"),
                     source=Rows(_grade_settings))
    return Nested("gradebook", children=[
        attributes,
        Nested("grade_categories", children=[category]),
        Nested("grade_items", children=[item]),
        Nested("grade_letters", children=[letter]),
        Nested("grade_settings", children=[setting]),
    ])


def _grade_settings(ctx: TaskContext, _parent: Instance | None) -> list[Row]:
    """The course's grade settings, with ``minmaxtouse`` forced in from the
    site default when the course has none (keyed by name, as Moodle's array)."""
    settings: dict[str, Row] = {}
    for row in ctx.reader.rows("grade_settings", {"courseid": ctx.param("courseid")}):
        settings[str(row["name"])] = row
    if "minmaxtouse" not in settings:
        default = ctx.run.config("grade_minmaxtouse")
        settings["minmaxtouse"] = {"name": "minmaxtouse",
                                   "value": default["value"] if default else None}
    return list(settings.values())


def grade_history_structure(ctx: TaskContext) -> Nested:
    wanted = ctx.users and ctx.run.setting("grade_histories")
    grade = Nested(
        "grade_grade", attrs=("id",),
        fields=("action", "oldid", "source", "loggeduser", "itemid", "userid", "rawgrade",
                "rawgrademax", "rawgrademin", "rawscaleid", "usermodified", "finalgrade",
                "hidden", "locked", "locktime", "exported", "overridden", "excluded",
                "feedback", "feedbackformat", "information", "informationformat",
                "timemodified"),
        source=Sql("SELECT ggh.* FROM {grade_grades_history} ggh "
                   "JOIN {grade_items} gi ON ggh.itemid = gi.id "
                   f"WHERE gi.courseid = ? AND {_COURSE_ITEMS}", [Param("courseid")])
        if wanted else None,
        annotate=[("scalefinal", "rawscaleid"), ("userfinal", "loggeduser"),
                  ("userfinal", "userid"), ("userfinal", "usermodified")],
    )
    return Nested("grade_history", children=[
        Nested("grade_grades", children=[grade] if wanted else [])])
