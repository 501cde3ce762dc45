"""The section task: sections/section_N/section.xml and inforef.xml
(``backup_section_task::build`` in backup/moodle2/backup_section_task.class.php,
``backup_section_structure_step`` in backup_stepslib.php).

The task's context is the course's; the section's files are the course
context's ``course/section`` area for the section's id.
"""

from __future__ import annotations

from coursevault.definitions.context_members import inforef_step
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import FileArea, In, Nested, Param, Sql, Table
from coursevault.structure.registry import Plugin, Step

SECTION_FIELDS = ("number", "name", "summary", "summaryformat", "sequence", "visible",
                  "availabilityjson", "component", "itemid", "timemodified")


def section_structure(ctx: TaskContext) -> Nested:
    """section.xml: the course_sections row (``section`` written as
    ``number``, ``availability`` as ``availabilityjson``) and the section's
    own format options for the course's format."""
    section = Nested(
        "section", attrs=("id",), fields=SECTION_FIELDS,
        source=Table("course_sections", {"id": Param("sectionid")}),
        compute={"number": lambda row, _ctx: row.get("section"),
                 "availabilityjson": lambda row, _ctx: row.get("availability")},
        files=[FileArea("course", "section", "id")],
    )
    options = Nested(
        "course_format_options", attrs=("id",), fields=("format", "name", "value"),
        source=Sql("SELECT cfo.sectionid AS cv_key, cfo.id, cfo.format, cfo.name, cfo.value "
                   "FROM {course} c JOIN {course_format_options} cfo "
                   "ON cfo.courseid = c.id AND cfo.format = c.format "
                   "WHERE c.id = ? AND cfo.sectionid IN (?)",
                   [Param("courseid"), In(Param("sectionid"))], key="cv_key"),
    )
    return section.add(options)


def steps(ctx: TaskContext, plugin: Plugin | None = None) -> list[Step]:
    """section.xml then inforef.xml, as ``backup_section_task::build``."""
    return [Step("section.xml", build=section_structure), inforef_step()]
