"""mod_wiki (``mod/wiki/backup/moodle2/backup_wiki_stepslib.php``, Moodle
4.5): the wiki; its subwikis with pages, versions, tags, synonyms and links
are all user data."""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.definitions.script_links import encode_script_links, index_view_rules
from coursevault.definitions.tags import item_tags
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Param, Table, Up
from coursevault.structure.registry import LinkContext, Plugin, Step

_RULES = [
    *index_view_rules("wiki", "WIKIINDEX", "WIKIVIEWBYID"),
    (r"(/mod/wiki/view.php\?pageid=)([0-9]+)", r"$@WIKIPAGEBYID*\g<2>@$"),
]


def wiki_structure(ctx: TaskContext) -> Nested:
    wiki = Nested(
        "wiki",
        attrs=("id",),
        fields=("name", "intro", "introformat", "timecreated", "timemodified", "firstpagetitle",
                "wikimode", "defaultformat", "forceformat", "editbegin", "editend"),
        source=Table("wiki", {"id": Param("activityid")}),
    )
    subwiki = Nested("subwiki", attrs=("id",), fields=("groupid", "userid"),
                     source=Table("wiki_subwikis", {"wikiid": Up("id")}), userinfo=True,
                     annotate=[("group", "groupid"), ("user", "userid")])
    page = Nested(
        "page", attrs=("id",),
        fields=("title", "cachedcontent", "timecreated", "timemodified", "timerendered",
                "userid", "pageviews", "readonly"),
        source=Table("wiki_pages", {"subwikiid": Up("id")}), userinfo=True,
        annotate=[("user", "userid")],
    )
    page.annotate_files("mod_wiki", "attachments", "id")
    version = Nested("version", attrs=("id",),
                     fields=("content", "contentformat", "version", "timecreated", "userid"),
                     source=Table("wiki_versions", {"pageid": Up("id")}), userinfo=True,
                     annotate=[("user", "userid")])
    page.add(Nested("versions", children=[version]),
             item_tags(ctx, "mod_wiki", "wiki_pages", userinfo=True))
    synonym = Nested("synonym", attrs=("id",), fields=("pageid", "pagesynonym"),
                     source=Table("wiki_synonyms", {"subwikiid": Up("id")}), userinfo=True)
    link = Nested("link", attrs=("id",), fields=("frompageid", "topageid", "tomissingpage"),
                  source=Table("wiki_links", {"subwikiid": Up("id")}), userinfo=True)
    subwiki.add(Nested("pages", children=[page]), Nested("synonyms", children=[synonym]),
                Nested("links", children=[link]))
    wiki.add(Nested("subwikis", children=[subwiki]))
    wiki.annotate_files("mod_wiki", "intro", None)
    return activity_structure(ctx, wiki)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_wiki_activity_task::encode_content_links``."""
    return encode_script_links(content, link, _RULES)


PLUGIN = Plugin(
    "wiki",
    steps=lambda ctx: [Step("wiki.xml", build=wiki_structure)],
    encode_links=encode_links,
)
