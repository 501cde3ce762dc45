"""mod_data (``mod/data/backup/moodle2/backup_data_stepslib.php``, Moodle
4.5): the database and its fields (each field type is a ``datafield``
subplugin: none of Moodle's own adds anything to the backup); records with
their contents, ratings and tags as user data."""

from __future__ import annotations

import re

from coursevault.definitions.common import activity_structure
from coursevault.definitions.script_links import encode_script_links, php_urlencode
from coursevault.definitions.subplugins import add_subplugin_structure
from coursevault.definitions.tags import tags_enabled
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Sql, Table, Up
from coursevault.structure.registry import LinkContext, Plugin, Step

_DATA_FIELDS = (
    "name", "intro", "introformat", "comments", "timeavailablefrom", "timeavailableto",
    "timeviewfrom", "timeviewto", "requiredentries", "requiredentriestoview", "maxentries",
    "rssarticles", "singletemplate", "listtemplate", "listtemplateheader",
    "listtemplatefooter", "addtemplate", "rsstemplate", "rsstitletemplate", "csstemplate",
    "jstemplate", "asearchtemplate", "approval", "manageapproved", "scale", "assessed",
    "assesstimestart", "assesstimefinish", "defaultsort", "defaultsortdir", "editany",
    "notification", "timemodified", "config", "completionentries",
)
_TAGS_SQL = (
    "SELECT t.id, ti.itemid, t.rawname FROM {tag} t JOIN {tag_instance} ti ON ti.tagid = t.id "
    "WHERE ti.itemtype = ? AND ti.component = ? AND ti.contextid = ?"
)


def _record(ctx: TaskContext) -> Nested:
    record = Nested("record", attrs=("id",),
                    fields=("userid", "groupid", "timecreated", "timemodified", "approved"),
                    source=Table("data_records", {"dataid": Up("id")}), userinfo=True,
                    annotate=[("user", "userid"), ("group", "groupid")])
    content = Nested("content", attrs=("id",),
                     fields=("fieldid", "content", "content1", "content2", "content3",
                             "content4"),
                     source=Table("data_content", {"recordid": Up("id")}), userinfo=True)
    content.annotate_files("mod_data", "content", "id")
    rating = Nested(
        "rating", attrs=("id",),
        fields=("component", "ratingarea", "scaleid", "value", "userid", "timecreated",
                "timemodified"),
        source=Table("rating", {"contextid": Param("contextid"), "itemid": Up("id"),
                                "component": "mod_data", "ratingarea": "entry"}),
        userinfo=True,
        compute={"value": lambda row, _ctx: row.get("rating")},
        annotate=[("scale", "scaleid"), ("user", "userid")],
    )
    return record.add(Nested("contents", children=[content]),
                      Nested("ratings", children=[rating]))


def data_structure(ctx: TaskContext) -> Nested:
    data = Nested("data", attrs=("id",), fields=_DATA_FIELDS,
                  source=Table("data", {"id": Param("activityid")}),
                  annotate=[("scale", "scale")])
    field = Nested(
        "field", attrs=("id",),
        fields=("type", "name", "description", "required", *(f"param{i}" for i in range(1, 11))),
        source=Table("data_fields", {"dataid": Up("id")}),
    )
    add_subplugin_structure(ctx, "datafield", field)
    tag = Nested("tag", attrs=("id",), fields=("itemid", "rawname"), userinfo=True)
    if tags_enabled(ctx, "mod_data", "data_records"):
        tag.set_source(Sql(_TAGS_SQL, ["data_records", "mod_data", Param("contextid")]))
    data.add(Nested("fields", children=[field]), Nested("records", children=[_record(ctx)]),
             Nested("recordstags", children=[tag]))
    data.annotate_files("mod_data", "intro", None)
    return activity_structure(ctx, data)


# backup_data_activity_task::encode_content_links, in its order: (script,
# query key, marker); each link plain, then urlencoded (MARKERURLENCODED)
_LINKS = (("index", "id", "DATAINDEX"), ("view", "id", "DATAVIEWBYID"), None,
          ("view", "d", "DATAVIEWBYD"), ("edit", "id", "DATAEDITBYID"),
          ("edit", "d", "DATAEDITBYD"))


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_data_activity_task::encode_content_links``.  The urlencoded
    patterns are not regex-quoted in PHP (their dots match any character):
    kept so here.  ``None`` in _LINKS is the record link, which has two ids."""
    for entry in _LINKS:
        if entry is None:
            content = _encode_record_links(content, link)
            continue
        script, key, marker = entry
        content = encode_script_links(
            content, link, [(rf"(/mod/data/{script}.php\?{key}=)([0-9]+)", rf"$@{marker}*\g<2>@$")])
        encoded = php_urlencode(f"{link.wwwroot}/mod/data/{script}.php?{key}=")
        content = re.sub(f"({encoded})([0-9]+)", rf"$@{marker}URLENCODED*\g<2>@$", content)
    return content


def _encode_record_links(content: str, link: LinkContext) -> str:
    content = encode_script_links(content, link, [
        (r"(/mod/data/view.php\?d=)([0-9]+)&(amp;)rid=([0-9]+)",
         r"$@DATAVIEWRECORD*\g<2>*\g<4>@$")])
    encoded = php_urlencode(f"{link.wwwroot}/mod/data/view.php?d=")
    return re.sub(f"({encoded})([0-9]+)%26rid%3D([0-9]+)",
                  r"$@DATAVIEWRECORDURLENCODED*\g<2>*\g<3>@$", content)


PLUGIN = Plugin(
    "data",
    steps=lambda ctx: [Step("data.xml", build=data_structure)],
    encode_links=encode_links,
)
