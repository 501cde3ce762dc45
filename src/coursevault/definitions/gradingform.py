"""The gradingform subplugins' parts of grading.xml: rubric and marking guide.

Mirror grade/grading/form/rubric/backup/moodle2/backup_gradingform_rubric_plugin.class.php
and .../guide/backup/moodle2/backup_gradingform_guide_plugin.class.php.  Each
adds a ``plugin_gradingform_<name>_definition`` element to a definition and
a ``plugin_gradingform_<name>_instance`` element to an instance, written only
when the definition's ``method`` is the plugin's (Moodle's
``get_plugin_element(null, '../../method', 'rubric')`` optigroup condition).
Registered as subplugins ``gradingform_rubric`` and ``gradingform_guide``;
activity_grades.grading_structure asks for them by prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Row, Rows, Sql, Table, Up
from coursevault.structure.engine import Instance
from coursevault.structure.registry import Plugin

Part = Callable[[TaskContext], Nested]


def _when_method(method: str) -> Rows:
    """One row when the nearest definition's method is ``method``, else none."""

    def rows(_ctx: TaskContext, parent: Instance | None) -> Iterable[Row]:
        if parent is None:
            return []
        return [{}] if parent.value(Up("method", element="definition")) == method else []

    return Rows(rows)


def rubric_definition(_ctx: TaskContext) -> Nested:
    level = Nested(
        "level", attrs=("id",), fields=("score", "definition", "definitionformat"),
        source=Table("gradingform_rubric_levels", {"criterionid": Up("id")}),
    )
    criterion = Nested(
        "criterion", attrs=("id",), fields=("sortorder", "description", "descriptionformat"),
        source=Table("gradingform_rubric_criteria", {"definitionid": Up("id")}),
        children=[Nested("levels", children=[level])],
    )
    return Nested("plugin_gradingform_rubric_definition", source=_when_method("rubric"),
                  children=[Nested("criteria", children=[criterion])])


def rubric_instance(_ctx: TaskContext) -> Nested:
    filling = Nested(
        "filling", attrs=("id",), fields=("criterionid", "levelid", "remark", "remarkformat"),
        source=Sql(
            "SELECT rf.* FROM {gradingform_rubric_fillings} rf"
            " JOIN {grading_instances} gi ON gi.id = rf.instanceid"
            " JOIN {gradingform_rubric_criteria} rc ON rc.id = rf.criterionid"
            " AND gi.definitionid = rc.definitionid"
            " WHERE rf.instanceid = ?",
            [Up("id", element="instance")],
        ),
    )
    return Nested("plugin_gradingform_rubric_instance", source=_when_method("rubric"),
                  children=[Nested("fillings", children=[filling])])


def guide_definition(_ctx: TaskContext) -> Nested:
    criterion = Nested(
        "guidecriterion", attrs=("id",),
        fields=("sortorder", "shortname", "description", "descriptionformat",
                "descriptionmarkers", "descriptionmarkersformat", "maxscore"),
        source=Table("gradingform_guide_criteria", {"definitionid": Up("id")}),
    )
    comment = Nested(
        "guidecomment", attrs=("id",), fields=("sortorder", "description", "descriptionformat"),
        source=Table("gradingform_guide_comments", {"definitionid": Up("id")}),
    )
    return Nested("plugin_gradingform_guide_definition", source=_when_method("guide"),
                  children=[Nested("guidecriteria", children=[criterion]),
                            Nested("guidecomments", children=[comment])])


def guide_instance(_ctx: TaskContext) -> Nested:
    filling = Nested(
        "filling", attrs=("id",), fields=("criterionid", "remark", "remarkformat", "score"),
        source=Sql(
            "SELECT gf.* FROM {gradingform_guide_fillings} gf"
            " JOIN {grading_instances} gi ON gi.id = gf.instanceid"
            " JOIN {gradingform_guide_criteria} gc ON gc.id = gf.criterionid"
            " AND gi.definitionid = gc.definitionid"
            " WHERE gf.instanceid = ?",
            [Up("id", element="instance")],
        ),
    )
    return Nested("plugin_gradingform_guide_instance", source=_when_method("guide"),
                  children=[Nested("fillings", children=[filling])])


RUBRIC = Plugin("gradingform_rubric", steps=lambda _ctx: [],
                extra={"definition": rubric_definition, "instance": rubric_instance})
GUIDE = Plugin("gradingform_guide", steps=lambda _ctx: [],
               extra={"definition": guide_definition, "instance": guide_instance})
