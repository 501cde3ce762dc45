"""users.xml: ``backup_users_structure_step`` and ``backup_annotate_all_user_files``
(backup/moodle2/backup_stepslib.php).

The final annotated users (enrolments, role assignments, activity data,
group members) with their custom profile fields, tags, preferences and the
role overrides and assignments of their user contexts.  Before the file is
written, the profile and icon files of each user's context are annotated
(not when anonymising).

Order: Moodle joins ``{user}`` with its temp table without ORDER BY and gets
the temp table's storage order (definitions/final_annotations.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from coursevault.definitions.final_annotations import final_ids, rows_by_ids
from coursevault.moodle2.anonymize import anonymized
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import (
    UNSET,
    USER_ROWS_WINDOW,
    In,
    Nested,
    Row,
    Rows,
    Sql,
    Table,
    Up,
)
from coursevault.structure.engine import Instance

CONTEXT_USER = 30
_ANON_FIELDS = (
    "username", "idnumber", "email", "phone1", "phone2", "institution", "department",
    "address", "city", "country", "lastip", "picture", "description", "descriptionformat",
    "imagealt", "auth",
    # \core_user\fields::get_name_fields()
    "firstnamephonetic", "lastnamephonetic", "middlename", "alternatename", "firstname",
    "lastname",
)
_NORMAL_FIELDS = (
    "confirmed", "policyagreed", "deleted", "lang", "theme", "timezone", "firstaccess",
    "lastaccess", "lastlogin", "currentlogin", "mailformat", "maildigest", "maildisplay",
    "autosubscribe", "trackforums", "timecreated", "timemodified", "trustbitmask",
)


# users read, made and written at a time (the engine's Nested ``window``):
# 1,000 users were about 8 MB of rows and instances at an M course's peak
USERS_WINDOW = USER_ROWS_WINDOW
_USER_SQL = (
    "SELECT u.*, c.id AS contextid, m.wwwroot AS mnethosturl FROM {user} u "
    f"LEFT JOIN {{context}} c ON c.instanceid = u.id AND c.contextlevel = {CONTEXT_USER} "
    "LEFT JOIN {mnet_host} m ON m.id = u.mnethostid WHERE u.id IN")
_CONTEXT_SQL = (
    "SELECT u.id, c.id AS contextid FROM {user} u "
    f"LEFT JOIN {{context}} c ON c.instanceid = u.id AND c.contextlevel = {CONTEXT_USER} "
    "WHERE u.id IN")


def user_rows(ctx: TaskContext, ids: list[str]) -> list[Row]:
    """Final users ``ids``, each with its user context id and MNet host root."""
    return rows_by_ids(ctx, _USER_SQL, ids)


def annotate_user_files(ctx: TaskContext, users: list[Row]) -> None:
    """``backup_annotate_all_user_files``: profile and icon files of every
    final user that has a context (``users``: rows with ``contextid``)."""
    ctx.run.prefetch_files(str(u["contextid"]) for u in users if u.get("contextid") is not None)
    for user in users:
        if user.get("contextid") is None:
            continue
        for area in ("profile", "icon"):
            ctx.annotate("file", ctx.run.files_of(str(user["contextid"]), "user", area))


def users_structure(ctx: TaskContext) -> Nested:
    anonymize = ctx.run.setting("anonymize")
    ids = final_ids(ctx, "user")
    if not anonymize:  # before the file is written, for every user at once
        annotate_user_files(ctx, rows_by_ids(ctx, _CONTEXT_SQL, ids))
    local = _local_wwwroot(ctx)
    fields = list(_ANON_FIELDS)
    fields.append("mnethosturl")
    if _config(ctx, "includeuserpasswordsinbackup"):
        fields.append("password")
    fields.extend(_NORMAL_FIELDS)

    def shown(c: TaskContext, _p: Instance | None) -> Iterator[Row]:
        """Each user's row as written, read a window at a time as the
        engine takes them (``users`` has one parent: this runs once)."""
        rank = 0
        for start in range(0, len(ids), USERS_WINDOW):
            for row in user_rows(c, ids[start : start + USERS_WINDOW]):
                rank += 1
                if anonymize:
                    row.update(anonymized(row, rank))
                host = row.get("mnethosturl")
                if host is None or host == local:
                    row["mnethosturl"] = UNSET  # mnethosturl_final_element: left unset
                yield row

    user = Nested("user", attrs=("id", "contextid"), fields=fields, source=Rows(shown),
                  window=USERS_WINDOW)
    user.add(*_user_children(ctx, anonymize))
    return Nested("users", children=[user])


def _user_children(ctx: TaskContext, anonymize: bool) -> list[Nested]:
    full = not anonymize
    customfield = Nested(
        "custom_field", attrs=("id",), fields=("field_name", "field_type", "field_data"),
        source=Sql("SELECT d.userid AS cv_key, f.id, f.shortname AS field_name, "
                   "f.datatype AS field_type, d.data AS field_data FROM {user_info_field} f "
                   "JOIN {user_info_data} d ON d.fieldid = f.id WHERE d.userid IN (?)",
                   [In(Up("id"))], key="cv_key") if full else None)
    tag = Nested(
        "tag", attrs=("id",), fields=("name", "rawname"),
        source=Sql("SELECT ti.itemid AS cv_key, t.id, t.name, t.rawname FROM {tag} t "
                   "JOIN {tag_instance} ti ON ti.tagid = t.id "
                   "WHERE ti.itemtype = 'user' AND ti.itemid IN (?)", [In(Up("id"))],
                   key="cv_key") if full else None)
    # one user's preferences come by the (userid, name) index Moodle's query uses
    preference = Nested("preference", attrs=("id",), fields=("name", "value"),
                        source=Table("user_preferences", {"userid": Up("id")}, order="name")
                        if full else None)
    override = Nested(
        "override", attrs=("id",),
        fields=("roleid", "capability", "permission", "timemodified", "modifierid"),
        source=Table("role_capabilities", {"contextid": Up("contextid", element="user")})
        if full else None,
        annotate=[("rolefinal", "roleid")] if full else [])
    assign = full and ctx.run.setting("role_assignments")
    assignment = Nested(
        "assignment", attrs=("id",),
        fields=("roleid", "userid", "timemodified", "modifierid", "component", "sortorder"),
        source=Table("role_assignments", {"contextid": Up("contextid", element="user")})
        if assign else None)
    return [
        Nested("custom_fields", children=[customfield] if full else []),
        Nested("tags", children=[tag] if full else []),
        Nested("preferences", children=[preference] if full else []),
        Nested("roles", children=[
            Nested("role_overrides", children=[override] if full else []),
            Nested("role_assignments", children=[assignment] if assign else []),
        ]),
    ]


def _local_wwwroot(ctx: TaskContext) -> str | None:
    """``backup_plan_dbops::get_mnet_localhost_wwwroot``."""
    return ctx.run.site.wwwroot


def _config(ctx: TaskContext, name: str) -> str | None:
    row = ctx.run.config(name)
    return None if row is None or not row["value"] else str(row["value"])
