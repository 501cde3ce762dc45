"""completion.xml: ``backup_course_completion_structure_step``
(backup/moodle2/backup_stepslib.php).

Course completion criteria (with the course and role they name, by short
name, for restores on other sites), the aggregation methods, and -- with
the ``userscompletion`` setting -- each criterion's completions and the
course completions.  Written only when no activity is excluded.
"""

from __future__ import annotations

from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Sql, Table, Up


def completion_included(ctx: TaskContext) -> bool:
    return ctx.run.setting("activities")


def completion_structure(ctx: TaskContext) -> Nested:
    users = ctx.run.setting("userscompletion")
    critcompl = Nested(
        "course_completion_crit_compl", attrs=("id",),
        fields=("criteriaid", "userid", "gradefinal", "timecompleted"),
        source=Table("course_completion_crit_compl", {"criteriaid": Up("id")})
        if users else None,
        annotate=[("user", "userid")])
    criteria = Nested(
        "course_completion_criteria", attrs=("id",),
        fields=("course", "criteriatype", "module", "moduleinstance", "courseinstanceshortname",
                "enrolperiod", "timeend", "gradepass", "role", "roleshortname"),
        source=Sql("SELECT ccc.*, c.shortname AS courseinstanceshortname, "
                   "r.shortname AS roleshortname FROM {course_completion_criteria} ccc "
                   "LEFT JOIN {course} c ON c.id = ccc.courseinstance "
                   "LEFT JOIN {role} r ON r.id = ccc.role WHERE ccc.course = ?",
                   [Param("courseid")]),
        annotate=[("role", "role")],
        children=[Nested("course_completion_crit_completions",
                         children=[critcompl] if users else [])])
    children = [criteria]
    if users:
        children.append(Nested(
            "course_completions", attrs=("id",),
            fields=("userid", "course", "timeenrolled", "timestarted", "timecompleted",
                    "reaggregate"),
            source=Table("course_completions", {"course": Param("courseid")}),
            annotate=[("user", "userid")]))
    children.append(Nested(
        "course_completion_aggr_methd", attrs=("id",),
        fields=("course", "criteriatype", "method", "value"),
        source=Table("course_completion_aggr_methd", {"course": Param("courseid")})))
    return Nested("course_completion", children=children)
