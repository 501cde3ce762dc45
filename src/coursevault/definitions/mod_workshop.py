"""mod_workshop (``mod/workshop/backup/moodle2/backup_workshop_stepslib.php``,
Moodle 4.5): the workshop with its form and evaluation subplugins'
settings, example submissions with their reference assessments; example
assessments, submissions, peer assessments and grading aggregations as user
data.  The subplugins live in workshop_subplugins.py."""

from __future__ import annotations

from coursevault.definitions import workshop_subplugins
from coursevault.definitions.common import activity_structure
from coursevault.definitions.script_links import encode_script_links, index_view_rules
from coursevault.definitions.subplugins import add_subplugin_structure
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import FileArea, Nested, Param, Sql, Table, Up
from coursevault.structure.registry import LinkContext, Plugin, Step

_RULES = index_view_rules("workshop", "WORKSHOPINDEX", "WORKSHOPVIEWBYID")
_WORKSHOP_FIELDS = (
    "name", "intro", "introformat", "instructauthors", "instructauthorsformat",
    "instructreviewers", "instructreviewersformat", "timemodified", "phase", "useexamples",
    "usepeerassessment", "useselfassessment", "grade", "gradinggrade", "strategy",
    "evaluation", "gradedecimals", "submissiontypetext", "submissiontypefile", "nattachments",
    "submissionfiletypes", "latesubmissions", "maxbytes", "examplesmode", "submissionstart",
    "submissionend", "assessmentstart", "assessmentend", "conclusion", "conclusionformat",
    "overallfeedbackmode", "overallfeedbackfiles", "overallfeedbackfiletypes",
    "overallfeedbackmaxbytes",
)
_ASSESSMENT_FIELDS = (
    "reviewerid", "weight", "timecreated", "timemodified", "grade", "gradinggrade",
    "gradinggradeover", "gradinggradeoverby", "feedbackauthor", "feedbackauthorformat",
    "feedbackauthorattachment", "feedbackreviewer", "feedbackreviewerformat",
)
_FEEDBACK_FILES = [FileArea("mod_workshop", "overallfeedback_content", "id"),
                   FileArea("mod_workshop", "overallfeedback_attachment", "id")]
_SUBMISSION_FILES = [FileArea("mod_workshop", "submission_content", "id"),
                     FileArea("mod_workshop", "submission_attachment", "id")]


def _examplesubmission(ctx: TaskContext) -> Nested:
    example = Nested(
        "examplesubmission", attrs=("id",),
        fields=("timecreated", "timemodified", "title", "content", "contentformat",
                "contenttrust", "attachment"),
        source=Sql("SELECT * FROM {workshop_submissions} WHERE workshopid = ? AND example = 1",
                   [Up("id")]),
        files=_SUBMISSION_FILES,
    )
    reference = Nested(
        "referenceassessment", attrs=("id",),
        fields=("timecreated", "timemodified", "grade", "feedbackauthor",
                "feedbackauthorformat", "feedbackauthorattachment"),
        source=Sql("SELECT * FROM {workshop_assessments} WHERE weight = 1 AND submissionid = ?",
                   [Up("id")]),
        files=_FEEDBACK_FILES,
    )
    add_subplugin_structure(ctx, "workshopform", reference)
    assessment = Nested(
        "exampleassessment", attrs=("id",), fields=_ASSESSMENT_FIELDS,
        source=Sql("SELECT * FROM {workshop_assessments} WHERE weight = 0 AND submissionid = ?",
                   [Up("id")]),
        userinfo=True, annotate=[("user", "reviewerid")], files=_FEEDBACK_FILES,
    )
    add_subplugin_structure(ctx, "workshopform", assessment)
    return example.add(reference, Nested("exampleassessments", children=[assessment]))


def _submission(ctx: TaskContext) -> Nested:
    submission = Nested(
        "submission", attrs=("id",),
        fields=("authorid", "timecreated", "timemodified", "title", "content", "contentformat",
                "contenttrust", "attachment", "grade", "gradeover", "gradeoverby",
                "feedbackauthor", "feedbackauthorformat", "timegraded", "published", "late"),
        source=Sql("SELECT * FROM {workshop_submissions} WHERE workshopid = ? AND example = 0",
                   [Up("id")]),
        userinfo=True, annotate=[("user", "authorid"), ("user", "gradeoverby")],
        files=_SUBMISSION_FILES,
    )
    assessment = Nested(
        "assessment", attrs=("id",), fields=_ASSESSMENT_FIELDS,
        source=Table("workshop_assessments", {"submissionid": Up("id")}), userinfo=True,
        annotate=[("user", "reviewerid"), ("user", "gradinggradeoverby")],
        files=_FEEDBACK_FILES,
    )
    add_subplugin_structure(ctx, "workshopform", assessment)
    return submission.add(Nested("assessments", children=[assessment]))


def workshop_structure(ctx: TaskContext) -> Nested:
    workshop = Nested("workshop", attrs=("id",), fields=_WORKSHOP_FIELDS,
                      source=Table("workshop", {"id": Param("activityid")}))
    add_subplugin_structure(ctx, "workshopform", workshop)
    add_subplugin_structure(ctx, "workshopeval", workshop)
    aggregation = Nested("aggregation", attrs=("id",),
                         fields=("userid", "gradinggrade", "timegraded"),
                         source=Table("workshop_aggregations", {"workshopid": Up("id")}),
                         userinfo=True, annotate=[("user", "userid")])
    workshop.add(Nested("examplesubmissions", children=[_examplesubmission(ctx)]),
                 Nested("submissions", children=[_submission(ctx)]),
                 Nested("aggregations", children=[aggregation]))
    for area in ("intro", "instructauthors", "instructreviewers", "conclusion"):
        workshop.annotate_files("mod_workshop", area, None)
    return activity_structure(ctx, workshop)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_workshop_activity_task::encode_content_links``.  (Moodle
    2.0's returned its input unchanged; the fix is long in.)"""
    return encode_script_links(content, link, _RULES)


PLUGIN = Plugin(
    "workshop",
    steps=lambda ctx: [Step("workshop.xml", build=workshop_structure)],
    encode_links=encode_links,
    extra={"restore_hooks": workshop_subplugins.restore_hooks()},
)
