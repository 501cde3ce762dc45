"""mod_glossary (``mod/glossary/backup/moodle2/backup_glossary_stepslib.php``,
Moodle 4.5): the glossary and its categories always; entries with their
aliases and ratings, the entries' tags and the category memberships only
with user data.  Comments on entries are the activity's comments.xml, not
here."""

from __future__ import annotations

from typing import Any

from coursevault.definitions.common import activity_structure
from coursevault.definitions.preg import preg_replace, quoted_root
from coursevault.definitions.tags import context_tags
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Row, Table, Up
from coursevault.structure.registry import LinkContext, Plugin, Step

GLOSSARY_FIELDS = (
    "name", "intro", "introformat", "allowduplicatedentries", "displayformat",
    "mainglossary", "showspecial", "showalphabet", "showall",
    "allowcomments", "allowprintview", "usedynalink", "defaultapproval",
    "globalglossary", "entbypage", "editalways", "rsstype",
    "rssarticles", "assessed", "assesstimestart", "assesstimefinish",
    "scale", "timecreated", "timemodified", "completionentries",
)
ENTRY_FIELDS = (
    "userid", "concept", "definition", "definitionformat",
    "definitiontrust", "attachment", "timecreated", "timemodified",
    "teacherentry", "sourceglossaryid", "usedynalink", "casesensitive",
    "fullmatch", "approved",
)


def scale_ref(field: str) -> Any:
    """The id a ``scale`` annotation of ``field`` records: Moodle stores a
    custom scale as its negated id and ``insert_backup_ids_record`` negates
    scale values back, dropping what is not then positive (a point grade)."""

    def value(row: Row, _ctx: TaskContext) -> str | None:
        raw = row.get(field)
        try:
            scaleid = -int(str(raw))
        except ValueError:
            return None
        return str(scaleid) if scaleid > 0 else None

    return value


def glossary_structure(ctx: TaskContext) -> Nested:
    """``backup_glossary_activity_structure_step::define_structure``."""
    glossary = Nested(
        "glossary", attrs=("id",), fields=GLOSSARY_FIELDS,
        source=Table("glossary", {"id": Param("activityid")}),
        compute={"_scaleref": scale_ref("scale")},
        annotate=[("scale", "_scaleref")],
    )
    glossary.annotate_files("mod_glossary", "intro", None)
    glossary.add(
        Nested("entries", children=[_entry()]),
        context_tags(ctx, "entriestags", "mod_glossary", "glossary_entries", userinfo=True),
        Nested("categories", children=[_category()]),
    )
    return activity_structure(ctx, glossary)


def _entry() -> Nested:
    entry = Nested(
        "entry", attrs=("id",), fields=ENTRY_FIELDS,
        source=Table("glossary_entries", {"glossaryid": Up("id")}),
        userinfo=True,
        annotate=[("user", "userid")],
    )
    entry.annotate_files("mod_glossary", "entry", "id")
    entry.annotate_files("mod_glossary", "attachment", "id")
    alias = Nested(
        "alias", attrs=("id",), fields=("alias_text",),
        source=Table("glossary_alias", {"entryid": Up("id")}),
        userinfo=True,
        compute={"alias_text": lambda row, _ctx: row.get("alias")},
    )
    rating = Nested(
        "rating", attrs=("id",),
        fields=("component", "ratingarea", "scaleid", "value", "userid",
                "timecreated", "timemodified"),
        source=Table("rating", {"contextid": Param("contextid"), "itemid": Up("id"),
                                "component": "mod_glossary", "ratingarea": "entry"}),
        userinfo=True,
        compute={"value": lambda row, _ctx: row.get("rating"),
                 "_scaleref": scale_ref("scaleid")},
        annotate=[("scale", "_scaleref"), ("user", "userid")],
    )
    return entry.add(Nested("aliases", children=[alias]), Nested("ratings", children=[rating]))


def _category() -> Nested:
    category = Nested(
        "category", attrs=("id",), fields=("name", "usedynalink"),
        source=Table("glossary_categories", {"glossaryid": Up("id")}),
    )
    category_entry = Nested(
        "category_entry", attrs=("id",), fields=("entryid",),
        source=Table("glossary_entries_categories", {"categoryid": Up("id")}),
        userinfo=True,
    )
    return category.add(Nested("category_entries", children=[category_entry]))


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_glossary_activity_task::encode_content_links``."""
    base = quoted_root(link)
    content = preg_replace(rf"({base}\/mod\/glossary\/index.php\?id\=)([0-9]+)",
                           "$@GLOSSARYINDEX*$2@$", content)
    return preg_replace(rf"({base}\/mod\/glossary\/view.php\?id\=)([0-9]+)",
                        "$@GLOSSARYVIEWBYID*$2@$", content)


PLUGIN = Plugin(
    "glossary",
    steps=lambda ctx: [Step("glossary.xml", build=glossary_structure)],
    encode_links=encode_links,
)
