"""Logs of a course or activity, written only when the ``logs`` setting is on
(off by default): ``backup_course_logs_structure_step`` /
``backup_activity_logs_structure_step`` (logs.xml, the legacy log table),
``backup_course_logstores_structure_step`` / ``backup_activity_logstores_structure_step``
(logstores.xml: the tool_log stores' subplugins, of which stock Moodle backs
up ``logstore_standard``'s events of the context) and
``backup_course_loglastaccess_structure_step`` (loglastaccess.xml).

None of the reference backups has logs (Moodle's default leaves them out),
so these are written from Moodle's PHP alone and are not checked byte for
byte.  Users are not annotated from logs, as in Moodle ("they MUST be always
annotated by the course").
"""

from __future__ import annotations

import base64

from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Row, Table


def legacy_logs_structure(ctx: TaskContext, cmid: str = "0") -> Nested:
    """logs.xml: the legacy ``log`` rows of the course with ``cmid`` (0 for
    the course's own, the module's id for an activity's)."""
    log = Nested(
        "log", attrs=("id",),
        fields=("time", "userid", "ip", "module", "action", "url", "info"),
        source=Table("log", {"course": Param("courseid"), "cmid": cmid}),
    )
    return Nested("logs", children=[log])


def _base64_other(row: Row, _ctx: TaskContext) -> str | None:
    """``base64_encode_final_element``: null stays null."""
    other = row.get("other")
    return None if other is None else base64.b64encode(str(other).encode("utf-8")).decode()


def logstores_structure(ctx: TaskContext) -> Nested:
    """logstores.xml: ``<logstore>`` with logstore_standard's subplugin
    wrapper and the standard log's events of the task's context."""
    event = Nested(
        "logstore_standard_log", attrs=("id",),
        fields=("eventname", "component", "action", "target", "objecttable", "objectid",
                "crud", "edulevel", "contextid", "userid", "relateduserid", "anonymous",
                "other", "timecreated", "ip", "realuserid"),
        source=Table("logstore_standard_log", {"contextid": Param("contextid")}),
        compute={"other": _base64_other},
    )
    wrapper = Nested("subplugin_logstore_standard_logstore", children=[event])
    return Nested("logstores", children=[Nested("logstore", children=[wrapper])])


def loglastaccess_structure(ctx: TaskContext) -> Nested:
    """loglastaccess.xml: the course's ``user_lastaccess`` rows."""
    lastaccess = Nested(
        "lastaccess", attrs=("id",), fields=("userid", "timeaccess"),
        source=Table("user_lastaccess", {"courseid": Param("courseid")}),
    )
    return Nested("lastaccesses", children=[lastaccess])
