"""quizaccess_seb (mod/quiz/accessrule/seb/backup/moodle2/backup_quizaccess_seb_subplugin.class.php):
the quiz's Safe Exam Browser settings and the template they use.

Moodle builds both field lists from its persistents: ``to_record()`` is
``define_properties()`` in its order, then the persistent's own ``id``,
``timecreated``, ``timemodified`` and ``usermodified``; the settings leave
out ``id``, ``usermodified`` and ``timemodified``, the template
``usermodified`` and ``timemodified``.  (The reference site has no SEB
settings, so these lists are read from the PHP, not checked against a
backup.)  Nothing for attempts: the rule keeps no attempt data.
"""

from __future__ import annotations

from coursevault.definitions.subplugins import subplugin
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table, Up

SETTINGS_FIELDS = (
    "quizid", "cmid", "templateid", "requiresafeexambrowser", "showsebtaskbar",
    "showwificontrol", "showreloadbutton", "showtime", "showkeyboardlayout",
    "allowuserquitseb", "quitpassword", "linkquitseb", "userconfirmquit",
    "enableaudiocontrol", "muteonstartup", "allowcapturecamera", "allowcapturemicrophone",
    "allowspellchecking", "allowreloadinexam", "activateurlfiltering",
    "filterembeddedcontent", "expressionsallowed", "regexallowed", "expressionsblocked",
    "regexblocked", "showsebdownloadlink", "allowedbrowserexamkeys", "timecreated",
)
TEMPLATE_FIELDS = ("name", "description", "content", "enabled", "sortorder", "id",
                   "timecreated")


def seb_quiz(_ctx: TaskContext) -> Nested:
    """``define_quiz_subplugin_structure``: the wrapper is written even when
    the quiz has no SEB settings."""
    template = Nested("quizaccess_seb_template", fields=TEMPLATE_FIELDS,
                      source=Table("quizaccess_seb_template", {"id": Up("templateid")}))
    settings = Nested("quizaccess_seb_quizsettings", fields=SETTINGS_FIELDS,
                      source=Table("quizaccess_seb_quizsettings",
                                   {"quizid": Param("activityid")}),
                      children=[template])
    settings.annotate_files("quizaccess_seb", "filemanager_sebconfigfile", None)
    return Nested("subplugin_quizaccess_seb_quiz", children=[settings])


SEB = subplugin("quizaccess_seb", quiz=seb_quiz)
