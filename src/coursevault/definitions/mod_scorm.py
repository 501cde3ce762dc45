"""mod_scorm (``mod/scorm/backup/moodle2/backup_scorm_stepslib.php``, Moodle
4.5): the package, its SCOs with their data and sequencing rules, and the
SCO tracks as user data.

Since Moodle 4.3 tracks are no longer one table: ``scorm_scoes_value`` holds
the values, ``scorm_attempt`` the user and attempt number, and
``scorm_element`` the element names; the backup joins them back into the
``sco_track`` element restore has always read.
"""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.definitions.script_links import encode_script_links, index_view_rules
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Sql, Table, Up
from coursevault.structure.registry import LinkContext, Plugin, Step
from coursevault.structure.restore_engine import RestoreContext
from coursevault.structure.reverse import Record

_RULES = index_view_rules("scorm", "SCORMINDEX", "SCORMVIEWBYID")
_SCORM_FIELDS = (
    "name", "scormtype", "reference", "intro", "introformat", "version", "maxgrade",
    "grademethod", "whatgrade", "maxattempt", "forcecompleted", "forcenewattempt",
    "lastattemptlock", "masteryoverride", "displayattemptstatus", "displaycoursestructure",
    "updatefreq", "sha1hash", "md5hash", "revision", "launch", "skipview", "hidebrowse",
    "hidetoc", "nav", "navpositionleft", "navpositiontop", "auto", "popup", "options",
    "width", "height", "timeopen", "timeclose", "timemodified", "completionstatusrequired",
    "completionscorerequired", "completionstatusallscos", "autocommit",
)
_TRACKS_SQL = (
    "SELECT v.id, a.userid, a.attempt, e.element, v.value, v.timemodified "
    "FROM {scorm_scoes_value} v "
    "JOIN {scorm_attempt} a ON a.id = v.attemptid "
    "JOIN {scorm_element} e ON e.id = v.elementid "
    "WHERE v.scoid = ? ORDER BY v.id"
)


def _by_id(name: str, fields: tuple[str, ...], table: str, key: str) -> Nested:
    """An element whose rows Moodle reads ``ORDER BY id`` (scoes and their
    sequencing data: restore rebuilds the tree in that order)."""
    return Nested(name, attrs=("id",), fields=fields,
                  source=Table(table, {key: Up("id")}, order="id"))


def _sco() -> Nested:
    sco = _by_id("sco", ("manifest", "organization", "parent", "identifier", "launch",
                         "scormtype", "title", "sortorder"), "scorm_scoes", "scorm")
    rulecond = _by_id("seq_rulecond", ("conditioncombination", "ruletype", "action"),
                      "scorm_seq_ruleconds", "scoid")
    rulecond.add(Nested("seq_rulecond_datas", children=[_by_id(
        "seq_rulecond_data", ("refrencedobjective", "measurethreshold", "operator", "cond"),
        "scorm_seq_rulecond", "ruleconditionsid")]))
    rollup = _by_id("seq_rolluprule", ("childactivityset", "minimumcount", "minimumpercent",
                                       "conditioncombination", "action"),
                    "scorm_seq_rolluprule", "scoid")
    rollup.add(Nested("seq_rollupruleconds", children=[_by_id(
        "seq_rolluprulecond", ("cond", "operator"), "scorm_seq_rolluprulecond",
        "rollupruleid")]))
    objective = _by_id("seq_objective", ("primaryobj", "objectiveid", "satisfiedbymeasure",
                                         "minnormalizedmeasure"),
                       "scorm_seq_objective", "scoid")
    objective.add(Nested("seq_mapinfos", children=[_by_id(
        "seq_mapinfo", ("targetobjectiveid", "readsatisfiedstatus", "readnormalizedmeasure",
                        "writesatisfiedstatus", "writenormalizedmeasure"),
        "scorm_seq_mapinfo", "objectiveid")]))
    track = Nested("sco_track", attrs=("id",),
                   fields=("userid", "attempt", "element", "value", "timemodified"),
                   source=Sql(_TRACKS_SQL, [Up("id")]), userinfo=True,
                   annotate=[("user", "userid")])
    return sco.add(
        Nested("sco_datas", children=[_by_id("sco_data", ("name", "value"),
                                             "scorm_scoes_data", "scoid")]),
        Nested("seq_ruleconds", children=[rulecond]),
        Nested("seq_rolluprules", children=[rollup]),
        Nested("seq_objectives", children=[objective]),
        Nested("sco_tracks", children=[track]),
    )


def scorm_structure(ctx: TaskContext) -> Nested:
    scorm = Nested("scorm", attrs=("id",), fields=_SCORM_FIELDS,
                   source=Table("scorm", {"id": Param("activityid")}))
    scorm.add(Nested("scoes", children=[_sco()]))
    scorm.annotate_files("mod_scorm", "intro", None)
    scorm.annotate_files("mod_scorm", "content", None)
    scorm.annotate_files("mod_scorm", "package", None)
    return activity_structure(ctx, scorm)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_scorm_activity_task::encode_content_links``."""
    return encode_script_links(content, link, _RULES)


def restore_track(rc: RestoreContext, rec: Record) -> None:
    """A ``sco_track`` back into Moodle 4.3+'s tables (``process_scorm_sco_track``):
    the user's attempt and the element name found or made, the value under
    them; a track of a user the restore does not hold is left out."""
    userid = rc.map_ref("user", rec.values.get("userid"), column="userid")
    if not userid:
        return
    scormid, scoid = rc.param("activityid"), rec.up("id", "sco").new_id
    key = {"userid": userid, "scormid": scormid, "attempt": rec.values.get("attempt") or 1}
    attemptid = _found_or_made(rc, "scorm_attempt", key)
    elementid = _found_or_made(rc, "scorm_element", {"element": rec.values.get("element") or ""})
    rc.writer.insert("scorm_scoes_value", {
        "scoid": scoid, "attemptid": attemptid, "elementid": elementid,
        "value": rec.values.get("value") or "", "timemodified": rec.values.get("timemodified")})


def _found_or_made(rc: RestoreContext, table: str, key: dict[str, object]) -> int:
    """The row of ``key``: made by this restore (remembered, so a dry run,
    whose rows are not there to find, counts as a real one does), in the
    site already, or made now."""
    made: dict[tuple[object, ...], int] = rc.later.setdefault(f"made:{table}", [{}])[0]
    wanted = (*key.values(),)
    if wanted not in made:
        row = rc.writer.one(table, key)
        made[wanted] = int(row["id"]) if row else rc.writer.insert(table, key)
    return made[wanted]


PLUGIN = Plugin(
    "scorm",
    steps=lambda ctx: [Step("scorm.xml", build=scorm_structure)],
    encode_links=encode_links,
    extra={"restore_writers": {"sco_track": restore_track}},
)
