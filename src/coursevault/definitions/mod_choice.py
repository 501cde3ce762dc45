"""mod_choice (``mod/choice/backup/moodle2/backup_choice_stepslib.php``):
the choice, its options, and its answers as user data."""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.definitions.links import encode_module_links
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table, Up
from coursevault.structure.registry import LinkContext, Plugin, Step


def choice_structure(ctx: TaskContext) -> Nested:
    choice = Nested(
        "choice",
        attrs=("id",),
        fields=(
            "name", "intro", "introformat", "publish", "showresults", "display",
            "allowupdate", "allowmultiple", "showunanswered", "limitanswers", "timeopen",
            "timeclose", "timemodified", "completionsubmit", "showpreview",
            "includeinactive", "showavailable",
        ),
        source=Table("choice", {"id": Param("activityid")}),
        files=[],
    )
    option = Nested(
        "option",
        attrs=("id",),
        fields=("text", "maxanswers", "timemodified"),
        source=Table("choice_options", {"choiceid": Up("id")}, order="id ASC"),
    )
    answer = Nested(
        "answer",
        attrs=("id",),
        fields=("userid", "optionid", "timemodified"),
        source=Table("choice_answers", {"choiceid": Up("id", element="choice")}),
        userinfo=True,
        annotate=[("user", "userid")],
    )
    choice.add(Nested("options", children=[option]), Nested("answers", children=[answer]))
    choice.annotate_files("mod_choice", "intro", None)
    return activity_structure(ctx, choice)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_choice_activity_task::encode_content_links``."""
    return encode_module_links(content, link, "choice", index="CHOICEINDEX",
                               view="CHOICEVIEWBYID")


PLUGIN = Plugin(
    "choice",
    steps=lambda ctx: [Step("choice.xml", build=choice_structure)],
    encode_links=encode_links,
)
