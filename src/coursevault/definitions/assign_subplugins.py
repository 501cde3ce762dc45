"""mod_assign's subplugins: what each adds under a submission or a grade
(mod/assign/submission/*/backup/moodle2/backup_assignsubmission_*_subplugin.class.php,
mod/assign/feedback/*/backup/moodle2/backup_assignfeedback_*_subplugin.class.php).

Each part is a ``subplugin_<type>_<name>_<element>`` wrapper (Moodle's
``get_recommended_name``), written once per submission or grade even when
empty, holding the subplugin's rows.  assignsubmission_comments keeps its
comments in core's comments (comments.xml) and assignfeedback_offline keeps
nothing: both are registered, adding nothing, as in Moodle's backups.
"""

from __future__ import annotations

from coursevault.structure.context import TaskContext
from coursevault.structure.elements import In, Nested, Sql, Table, Up
from coursevault.structure.registry import Plugin, Step


def _wrapper(kind: str, element: str, *children: Nested) -> Nested:
    return Nested(f"subplugin_{kind}_{element}", children=list(children))


def submission_file(_ctx: TaskContext) -> Nested:
    row = Nested("submission_file", fields=("numfiles", "submission"),
                 source=Table("assignsubmission_file", {"submission": Up("id")}))
    row.annotate_files("assignsubmission_file", "submission_files", "submission")
    return _wrapper("assignsubmission_file", "submission", row)


def submission_onlinetext(_ctx: TaskContext) -> Nested:
    row = Nested("submission_onlinetext", fields=("onlinetext", "onlineformat", "submission"),
                 source=Table("assignsubmission_onlinetext", {"submission": Up("id")}))
    row.annotate_files("assignsubmission_onlinetext", "submissions_onlinetext", "submission")
    return _wrapper("assignsubmission_onlinetext", "submission", row)


def feedback_comments(_ctx: TaskContext) -> Nested:
    row = Nested("feedback_comments", fields=("commenttext", "commentformat", "grade"),
                 source=Table("assignfeedback_comments", {"grade": Up("id")}))
    row.annotate_files("assignfeedback_comments", "feedback", "grade")
    return _wrapper("assignfeedback_comments", "grade", row)


def feedback_file(_ctx: TaskContext) -> Nested:
    row = Nested("feedback_files", fields=("numfiles", "grade"),
                 source=Table("assignfeedback_file", {"grade": Up("id")}))
    row.annotate_files("assignfeedback_file", "feedback_files", "grade")
    return _wrapper("assignfeedback_file", "grade", row)


def feedback_editpdf(_ctx: TaskContext) -> Nested:
    """The final PDF, the read-only page images and the stamps are kept;
    the rest can be regenerated (Moodle's comment)."""
    files = Nested("feedback_editpdf_files", fields=("gradeid",),
                   source=Sql("SELECT id AS cv_key, id AS gradeid FROM {assign_grades} "
                              "WHERE id IN (?)", [In(Up("id", element="grade"))],
                              key="cv_key"))
    for area in ("download", "readonlypages", "stamps"):
        files.annotate_files("assignfeedback_editpdf", area, "gradeid")
    annotation = Nested(
        "annotation",
        fields=("gradeid", "pageno", "type", "x", "y", "endx", "endy", "colour", "path",
                "draft"),
        source=Table("assignfeedback_editpdf_annot", {"gradeid": Up("id", element="grade")}))
    comment = Nested(
        "comment",
        fields=("gradeid", "x", "y", "width", "rawtext", "pageno", "colour", "draft"),
        source=Table("assignfeedback_editpdf_cmnt", {"gradeid": Up("id", element="grade")}))
    rotation = Nested(
        "pagerotation", fields=("gradeid", "pageno", "pathnamehash", "isrotated", "degree"),
        source=Table("assignfeedback_editpdf_rot", {"gradeid": Up("id", element="grade")}))
    return _wrapper(
        "assignfeedback_editpdf", "grade", files,
        Nested("feedback_editpdf_annotations", children=[annotation]),
        Nested("feedback_editpdf_comments", children=[comment]),
        Nested("feedback_editpdf_rotation", children=[rotation]),
    )


def _nothing(_ctx: TaskContext) -> list[Step]:
    return []


SUBMISSION_COMMENTS = Plugin("assignsubmission_comments", steps=_nothing)
SUBMISSION_FILE = Plugin("assignsubmission_file", steps=_nothing,
                         extra={"submission": submission_file})
SUBMISSION_ONLINETEXT = Plugin("assignsubmission_onlinetext", steps=_nothing,
                               extra={"submission": submission_onlinetext})
FEEDBACK_COMMENTS = Plugin("assignfeedback_comments", steps=_nothing,
                           extra={"grade": feedback_comments})
FEEDBACK_EDITPDF = Plugin("assignfeedback_editpdf", steps=_nothing,
                          extra={"grade": feedback_editpdf})
FEEDBACK_FILE = Plugin("assignfeedback_file", steps=_nothing,
                       extra={"grade": feedback_file})
FEEDBACK_OFFLINE = Plugin("assignfeedback_offline", steps=_nothing)
