"""mod_lti (``mod/lti/backup/moodle2/backup_lti_stepslib.php``, Moodle 4.5):
the tool instance with its encrypted resource key and password, the course
tool type it uses (site types only by name), LTI 2 tool settings, the
submissions as user data, and the ``ltiservice_gradebookservices`` line items
(``backup_ltiservice_gradebookservices_subplugin``).

Encrypted elements are written through the run's encrypter
(``encrypted_final_element``): their text differs every run, what they
decrypt to does not.
"""

from __future__ import annotations

from collections.abc import Iterable

from coursevault.definitions.common import activity_structure
from coursevault.definitions.script_links import encode_script_links, index_view_rules
from coursevault.definitions.subplugins import add_subplugin_structure, subplugin
from coursevault.moodledb.site import Row
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Rows, Sql, Table
from coursevault.structure.engine import Instance
from coursevault.structure.registry import LinkContext, Plugin, Step

SITEID = "1"
_RULES = index_view_rules("lti", "LTIINDEX", "LTIVIEWBYID")
_TYPE_FIELDS = (
    "name", "baseurl", "tooldomain", "state", "course", "coursevisible", "ltiversion",
    "clientid", "toolproxyid", "enabledcapability", "parameter", "icon", "secureicon",
    "createdby", "timecreated", "timemodified", "description",
)


def _lti_row(ctx: TaskContext) -> Row | None:
    """The activity's lti row, read once per task."""
    memo: dict[str, Row | None] = ctx.run.memo.setdefault("mod_lti.rows", {})
    activityid = str(ctx.param("activityid"))
    if activityid not in memo:
        memo[activityid] = ctx.reader.one("lti", {"id": activityid})
    return memo[activityid]


def _lti_type(ctx: TaskContext) -> Row | None:
    """``retrieve_lti_type``: a site type keeps only id, course, name and
    toolproxyid (the rest is not backed up: it may hold secrets)."""
    memo: dict[str, Row | None] = ctx.run.memo.setdefault("mod_lti.types", {})
    activityid = str(ctx.param("activityid"))
    if activityid in memo:
        return memo[activityid]
    lti = _lti_row(ctx)
    record = None
    if lti is not None and str(lti["typeid"] or "0") != "0":
        record = ctx.reader.one("lti_types", {"id": lti["typeid"]})
    if record is not None and str(record["course"]) == SITEID:
        keep = ("id", "course", "name", "toolproxyid")
        record = {k: (v if k in keep else None) for k, v in record.items()}
    memo[activityid] = record
    return record


def _type_rows(ctx: TaskContext, _parent: Instance | None) -> Iterable[Row]:
    record = _lti_type(ctx)
    return [record] if record is not None else []


def _toolproxy_rows(ctx: TaskContext, _parent: Instance | None) -> Iterable[Row]:
    record = _lti_type(ctx)
    if record is None or not record.get("toolproxyid"):
        return []
    return [{"id": record["toolproxyid"]}]


def _ltitype(ctx: TaskContext) -> Nested:
    record = _lti_type(ctx)
    ltitype = Nested("ltitype", attrs=("id",), fields=_TYPE_FIELDS, source=Rows(_type_rows),
                     annotate=[("user", "createdby"), ("course", "course")])
    config = Nested("ltitypesconfig", attrs=("id",), fields=("name", "value"))
    secret = Nested("ltitypesconfigencrypted", attrs=("id",), fields=("name", "value"),
                    encrypted=("value",))
    if record is not None and record.get("baseurl") is not None:
        params = [record["id"], "password", "resourcekey"]
        config.set_source(Sql("SELECT id, name, value FROM {lti_types_config} "
                              "WHERE typeid = ? AND name <> ? AND name <> ?", params))
        secret.set_source(Sql("SELECT id, name, value FROM {lti_types_config} "
                              "WHERE typeid = ? AND (name = ? OR name = ?)", params))
    setting = Nested("ltitoolsetting", attrs=("id",),
                     fields=("settings", "timecreated", "timemodified"))
    if record is not None and record.get("toolproxyid"):
        setting.set_source(Sql(
            "SELECT * FROM {lti_tool_settings} "
            "WHERE toolproxyid = ? AND course = ? AND coursemoduleid = ?",
            [record["toolproxyid"], Param("courseid"), Param("moduleid")]))
    proxy = Nested("ltitoolproxy", attrs=("id",), source=Rows(_toolproxy_rows),
                   children=[Nested("ltitoolsettings", children=[setting])])
    return ltitype.add(Nested("ltitypesconfigs", children=[config, secret]), proxy)


def _lineitem_source(ctx: TaskContext) -> Sql:
    """``backup_ltiservice_gradebookservices_subplugin``: the line items of
    the activity's tool (or tool proxy) in the course.  For an activity
    without a type (``typeid`` 0) and no coupled line item Moodle guesses
    the tool by URL (``lti_get_tool_by_url_match``); that guess is not made
    here, which is Moodle's result whenever no course or site tool matches."""
    lti = _lti_row(ctx) or {}
    typeid: str | None = "0"
    toolproxyid: str | None = "0"
    ltitype = ctx.reader.one("lti_types", {"id": lti.get("typeid") or "0"})
    if ltitype is not None:
        typeid, toolproxyid = str(lti["typeid"]), ltitype["toolproxyid"]
    elif str(lti.get("typeid") or "0") == "0":
        coupled = ctx.reader.one("ltiservice_gradebookservices",
                                 {"ltilinkid": ctx.param("activityid")})
        if coupled is not None:
            typeid, toolproxyid = coupled["typeid"], coupled["toolproxyid"]
    if toolproxyid is not None:
        return Sql("SELECT l.*, t.vendorcode AS vendorcode, t.guid AS guid "
                   "FROM {ltiservice_gradebookservices} l "
                   "JOIN {lti_tool_proxies} t ON t.id = l.toolproxyid "
                   "WHERE l.courseid = ? AND l.toolproxyid = ? AND l.typeid IS NULL",
                   [Param("courseid"), toolproxyid])
    return Sql("SELECT l.*, NULL AS vendorcode, NULL AS guid "
               "FROM {ltiservice_gradebookservices} l "
               "WHERE l.courseid = ? AND l.typeid = ? AND l.toolproxyid IS NULL",
               [Param("courseid"), typeid])


def _gradebookservices(ctx: TaskContext) -> Nested:
    """``backup_ltiservice_gradebookservices_subplugin``, under ``<lti>``."""
    lineitem = Nested(
        "lineitem", attrs=("id",),
        fields=("gradeitemid", "courseid", "toolproxyid", "typeid", "baseurl", "ltilinkid",
                "resourceid", "tag", "vendorcode", "guid", "subreviewurl", "subreviewparams"),
        source=_lineitem_source(ctx),
    )
    return Nested("subplugin_ltiservice_gradebookservices_lti",
                  children=[Nested("lineitems", children=[lineitem])])


def lti_structure(ctx: TaskContext) -> Nested:
    lti = Nested(
        "lti",
        attrs=("id",),
        fields=(
            "name", "intro", "introformat", "timecreated", "timemodified", "typeid", "toolurl",
            "securetoolurl", "launchcontainer", "instructorchoicesendname",
            "instructorchoicesendemailaddr", "instructorchoiceacceptgrades",
            "instructorchoiceallowroster", "instructorchoiceallowsetting", "grade",
            "instructorcustomparameters", "debuglaunch", "showtitlelaunch",
            "showdescriptionlaunch", "icon", "secureicon", "resourcekey", "password",
        ),
        source=Table("lti", {"id": Param("activityid")}),
        encrypted=("resourcekey", "password"),
    )
    submission = Nested(
        "ltisubmission", attrs=("id",),
        fields=("userid", "datesubmitted", "dateupdated", "gradepercent", "originalgrade",
                "launchid", "state"),
        source=Table("lti_submission", {"ltiid": Param("activityid")}),
        userinfo=True,
        annotate=[("user", "userid")],
    )
    lti.add(_ltitype(ctx), Nested("ltisubmissions", children=[submission]))
    # of Moodle 4.5's own, no ltisource plugin backs anything up and of the
    # ltiservice ones only gradebookservices does (GRADEBOOKSERVICES below)
    add_subplugin_structure(ctx, "ltisource", lti)
    add_subplugin_structure(ctx, "ltiservice", lti)
    lti.annotate_files("mod_lti", "intro", None)
    return activity_structure(ctx, lti)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_lti_activity_task::encode_content_links``."""
    return encode_script_links(content, link, _RULES)


GRADEBOOKSERVICES = subplugin("ltiservice_gradebookservices", lti=_gradebookservices)

PLUGIN = Plugin(
    "lti",
    steps=lambda ctx: [Step("lti.xml", build=lti_structure)],
    encode_links=encode_links,
)
