"""qtype_essay (question/type/essay/backup/moodle2/backup_qtype_essay_plugin.class.php):
no answers, only ``qtype_essay_options``; its grader information and
response template are files of its own component."""

from __future__ import annotations

from coursevault.definitions.qtype_parts import options, qtype_part, qtype_plugin
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested


def question(_ctx: TaskContext) -> Nested:
    return qtype_part("essay", options(
        "essay", "qtype_essay_options",
        ("responseformat", "responserequired", "responsefieldlines", "minwordlimit",
         "maxwordlimit", "attachments", "attachmentsrequired", "graderinfo", "graderinfoformat",
         "responsetemplate", "responsetemplateformat", "filetypeslist", "maxbytes")))


PLUGIN = qtype_plugin("essay", question, ("graderinfo",))
