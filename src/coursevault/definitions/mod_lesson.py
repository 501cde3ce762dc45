"""mod_lesson (``mod/lesson/backup/moodle2/backup_lesson_stepslib.php``,
Moodle 4.5): the lesson, its pages (``ORDER BY prevpageid``, the order
restore relinks them in) and answers; attempts, branches, grades and
timers as user data; overrides (group ones only without users)."""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.definitions.script_links import encode_script_links
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table, Up, Value
from coursevault.structure.registry import LinkContext, Plugin, Step

_LESSON_FIELDS = (
    "course", "name", "intro", "introformat", "practice", "modattempts", "usepassword",
    "password", "dependency", "conditions", "grade", "custom", "ongoing", "usemaxgrade",
    "maxanswers", "maxattempts", "review", "nextpagedefault", "feedback", "minquestions",
    "maxpages", "timelimit", "retake", "activitylink", "mediafile", "mediaheight",
    "mediawidth", "mediaclose", "slideshow", "width", "height", "bgcolor", "displayleft",
    "displayleftif", "progressbar", "available", "deadline", "timemodified",
    "completionendreached", "completiontimespent", "allowofflineattempts",
)
# backup_lesson_activity_task::encode_content_links, in its order: the
# base there is preg_quote($CFG->wwwroot . '/mod/lesson')
_RULES = [
    (r"/mod/lesson/edit\.php\?id=([0-9]+)", r"$@LESSONEDIT*\g<1>@$"),
    (r"/mod/lesson/editpage\.php\?id=([0-9]+)&(amp;)?pageid=([0-9]+)",
     r"$@LESSONEDITPAGE*\g<1>*\g<3>@$"),
    (r"/mod/lesson/essay\.php\?id=([0-9]+)", r"$@LESSONESSAY*\g<1>@$"),
    (r"/mod/lesson/highscores\.php\?id=([0-9]+)", r"$@LESSONHIGHSCORES*\g<1>@$"),
    (r"/mod/lesson/report\.php\?id=([0-9]+)", r"$@LESSONREPORT*\g<1>@$"),
    (r"/mod/lesson/mediafile\.php\?id=([0-9]+)", r"$@LESSONMEDIAFILE*\g<1>@$"),
    (r"/mod/lesson/index\.php\?id=([0-9]+)", r"$@LESSONINDEX*\g<1>@$"),
    (r"/mod/lesson/view\.php\?id=([0-9]+)&(amp;)?pageid=([0-9]+)",
     r"$@LESSONVIEWPAGE*\g<1>*\g<3>@$"),
    (r"/mod/lesson/view\.php\?id=([0-9]+)", r"$@LESSONVIEWBYID*\g<1>@$"),
]


def _page() -> Nested:
    page = Nested(
        "page", attrs=("id",),
        fields=("prevpageid", "nextpageid", "qtype", "qoption", "layout", "display",
                "timecreated", "timemodified", "title", "contents", "contentsformat"),
        source=Table("lesson_pages", {"lessonid": Up("id")}, order="prevpageid ASC"),
    )
    page.annotate_files("mod_lesson", "page_contents", "id")
    answer = Nested(
        "answer", attrs=("id",),
        fields=("jumpto", "grade", "score", "flags", "timecreated", "timemodified",
                "answer_text", "response", "answerformat", "responseformat"),
        source=Table("lesson_answers", {"pageid": Up("id")}, order="id ASC"),
        compute={"answer_text": lambda row, _ctx: row.get("answer")},
    )
    answer.annotate_files("mod_lesson", "page_answers", "id")
    answer.annotate_files("mod_lesson", "page_responses", "id")
    attempt = Nested("attempt", attrs=("id",),
                     fields=("userid", "retry", "correct", "useranswer", "timeseen"),
                     source=Table("lesson_attempts", {"answerid": Up("id")}), userinfo=True,
                     annotate=[("user", "userid")])
    attempt.annotate_files("mod_lesson", "essay_responses", "id")
    branch = Nested("branch", attrs=("id",),
                    fields=("userid", "retry", "flag", "timeseen", "nextpageid"),
                    source=Table("lesson_branch", {"pageid": Up("id")}), userinfo=True,
                    annotate=[("user", "userid")])
    answer.add(Nested("attempts", children=[attempt]))
    return page.add(Nested("answers", children=[answer]),
                    Nested("branches", children=[branch]))


def lesson_structure(ctx: TaskContext) -> Nested:
    lesson = Nested("lesson", attrs=("id",), fields=_LESSON_FIELDS,
                    source=Table("lesson", {"id": Param("activityid")}))
    grade = Nested("grade", attrs=("id",), fields=("userid", "grade", "late", "completed"),
                   source=Table("lesson_grades", {"lessonid": Up("id")}), userinfo=True,
                   annotate=[("user", "userid")])
    timer = Nested("timer", attrs=("id",),
                   fields=("userid", "starttime", "lessontime", "completed",
                           "timemodifiedoffline"),
                   source=Table("lesson_timer", {"lessonid": Up("id")}), userinfo=True,
                   annotate=[("user", "userid")])
    where: dict[str, Value] = {"lessonid": Up("id")}
    if not ctx.users:
        where["userid"] = None  # without users, group overrides only
    override = Nested("override", attrs=("id",),
                      fields=("groupid", "userid", "available", "deadline", "timelimit",
                              "review", "maxattempts", "retake", "password"),
                      source=Table("lesson_overrides", where),
                      annotate=[("user", "userid"), ("group", "groupid")])
    lesson.add(Nested("pages", children=[_page()]), Nested("grades", children=[grade]),
               Nested("timers", children=[timer]), Nested("overrides", children=[override]))
    lesson.annotate_files("mod_lesson", "intro", None)
    lesson.annotate_files("mod_lesson", "mediafile", None)
    return activity_structure(ctx, lesson)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_lesson_activity_task::encode_content_links``."""
    return encode_script_links(content, link, _RULES)


PLUGIN = Plugin(
    "lesson",
    steps=lambda ctx: [Step("lesson.xml", build=lesson_structure)],
    encode_links=encode_links,
)
