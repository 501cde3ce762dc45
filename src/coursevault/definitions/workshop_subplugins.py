"""The workshop's subplugins that back data up: the four assessment forms
(``mod/workshop/form/*/backup/moodle2/backup_workshopform_*_subplugin.class.php``)
and the "best assessment" evaluation
(``mod/workshop/eval/best/backup/moodle2/backup_workshopeval_best_subplugin.class.php``).
Allocation methods (``workshopallocation_*``) back nothing up: the workshop
step never asks them.

Each form hangs its definition under ``<workshop>`` and its dimension grades
under each (reference, example or peer) assessment, inside a wrapper named
``subplugin_workshopform_<form>_<connection point>``.  Every installed form
writes its wrapper, whatever strategy the workshop uses.
"""

from __future__ import annotations

from typing import Any

from coursevault.definitions.subplugins import SubpluginPart, subplugin
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import FileArea, Nested, Param, Sql, Table, Up
from coursevault.structure.registry import Plugin
from coursevault.structure.restore_engine import Hook, RestoreContext
from coursevault.structure.reverse import Record

_GRADE_ELEMENT = {
    "referenceassessment": "referencegrade",
    "exampleassessment": "examplegrade",
    "assessment": "grade",
}
# the dimension grade fields each form backs up (workshop_grades columns)
_GRADE_FIELDS = {
    "accumulative": ("dimensionid", "grade", "peercomment", "peercommentformat"),
    "comments": ("dimensionid", "peercomment", "peercommentformat"),
    "numerrors": ("dimensionid", "grade", "peercomment", "peercommentformat"),
    "rubric": ("dimensionid", "grade"),
}


def _wrapper(form: str, point: str, *children: Nested) -> Nested:
    return Nested(f"subplugin_workshopform_{form}_{point}", children=children)


def _dimension(form: str, table: str, fields: tuple[str, ...]) -> Nested:
    return Nested(f"workshopform_{form}_dimension", attrs=("id",), fields=fields,
                  source=Table(table, {"workshopid": Param("activityid")}),
                  files=[FileArea(f"workshopform_{form}", "description", "id")])


def _definition(form: str) -> list[Nested]:
    """What the form adds under ``<workshop>``."""
    if form == "accumulative":
        return [_dimension(form, "workshopform_accumulative",
                           ("sort", "description", "descriptionformat", "grade", "weight"))]
    if form == "comments":
        return [_dimension(form, "workshopform_comments",
                           ("sort", "description", "descriptionformat"))]
    if form == "numerrors":
        mapping = Nested("workshopform_numerrors_map", attrs=("id",),
                         fields=("nonegative", "grade"),
                         source=Table("workshopform_numerrors_map",
                                      {"workshopid": Param("activityid")}))
        return [mapping, _dimension(form, "workshopform_numerrors",
                                    ("sort", "description", "descriptionformat", "grade0",
                                     "grade1", "weight"))]
    config = Nested("workshopform_rubric_config", fields=("layout",),
                    source=Table("workshopform_rubric_config",
                                 {"workshopid": Param("activityid")}))
    level = Nested("workshopform_rubric_level", attrs=("id",),
                   fields=("grade", "definition", "definitionformat"),
                   source=Table("workshopform_rubric_levels", {"dimensionid": Up("id")}))
    dimension = _dimension(form, "workshopform_rubric",
                           ("sort", "description", "descriptionformat"))
    return [config, dimension.add(level)]


def _grades(form: str, point: str) -> SubpluginPart:
    """The dimension grades the form adds under an assessment."""
    fields = _GRADE_FIELDS[form]

    def part(_ctx: TaskContext) -> Nested:
        grade = Nested(
            f"workshopform_{form}_{_GRADE_ELEMENT[point]}", attrs=("id",), fields=fields,
            source=Sql(f"SELECT id, {', '.join(fields)} FROM {{workshop_grades}} "
                       f"WHERE strategy = '{form}' AND assessmentid = ?", [Up("id")]),
        )
        return _wrapper(form, point, grade)

    return part


def _form(form: str) -> Plugin:
    parts = {point: _grades(form, point) for point in _GRADE_ELEMENT}
    return subplugin(f"workshopform_{form}",
                     workshop=lambda _ctx: _wrapper(form, "workshop", *_definition(form)),
                     **parts)


def _best_settings(_ctx: TaskContext) -> Nested:
    settings = Nested("workshopeval_best_settings", fields=("comparison",),
                      source=Table("workshopeval_best_settings",
                                   {"workshopid": Param("activityid")}))
    return Nested("subplugin_workshopeval_best_workshop", children=[settings])


ACCUMULATIVE = _form("accumulative")
COMMENTS = _form("comments")
NUMERRORS = _form("numerrors")
RUBRIC = _form("rubric")
BEST = subplugin("workshopeval_best", workshop=_best_settings)


def restore_hooks() -> dict[str, Hook]:
    """Each form's dimension grades name the form's restored dimension
    (``process_workshopform_<form>_grade``: ``dimensionid`` through the
    form's dimension mapping), whatever the connection point."""
    hooks: dict[str, Hook] = {}
    for form in _GRADE_FIELDS:
        for element in _GRADE_ELEMENT.values():
            hooks[f"workshopform_{form}_{element}"] = _dimension_of(f"workshopform_{form}")
    return hooks


def _dimension_of(table: str) -> Hook:
    def hook(rc: RestoreContext, _rec: Record, row: dict[str, Any]) -> bool:
        row["dimensionid"] = rc.map_ref(table, row.get("dimensionid"), column="dimensionid")
        return True

    return hook
