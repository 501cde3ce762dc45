"""Tags in backups: whether an area's tags are backed up
(``core_tag_tag::is_enabled``) and the elements modules write them in.

``is_enabled`` is false when the site's ``usetags`` is off, and otherwise
true unless the area is switched off: an area unknown to ``tag_area``
counts as enabled (``core_tag_area::is_enabled`` returns null, and
``is_enabled`` tests ``!== false``).  Modules that tag their items either
write every tag instance of their context under one element (book chapters,
glossary entries: :func:`context_tags`) or each item's tags under it (wiki
pages, forum posts: :func:`item_tags`).
"""

from __future__ import annotations

from coursevault.structure.context import TaskContext
from coursevault.structure.elements import NO_ROWS, Nested, Param, Sql, Up

# mod/book and mod/glossary stepslib: every tag instance of the module context
_CONTEXT_TAGS = """SELECT t.id, ti.itemid, t.rawname
                     FROM {tag} t
                     JOIN {tag_instance} ti ON ti.tagid = t.id
                    WHERE ti.itemtype = ?
                      AND ti.component = ?
                      AND ti.contextid = ?"""
# an item's own tags (mod/wiki, mod/forum stepslib)
TAGS_SQL = (
    "SELECT t.id, t.name, t.rawname FROM {tag} t "
    "JOIN {tag_instance} ti ON ti.tagid = t.id "
    "WHERE ti.itemtype = ? AND ti.component = ? AND ti.itemid = ?"
)




def tags_enabled(ctx: TaskContext, component: str, itemtype: str) -> bool:
    """``core_tag_tag::is_enabled``, read once per run."""
    memo: dict[tuple[str, str], bool] = ctx.run.memo.setdefault("tag_areas_enabled", {})
    key = (component, itemtype)
    if key not in memo:
        usetags = ctx.run.config("usetags")
        if usetags is None or usetags["value"] in (None, "", "0"):
            memo[key] = False
        else:
            areas = ctx.run.memo.get("tag_areas")
            if areas is None:  # a few dozen rows: all of them, once per run
                areas = {(str(a["component"]), str(a["itemtype"])): a
                         for a in reversed(list(ctx.reader.rows("tag_area")))}
                ctx.run.memo["tag_areas"] = areas
            area = areas.get((component, itemtype))
            memo[key] = area is None or str(area["enabled"]) not in ("", "0")
    return memo[key]


def context_tags(
    ctx: TaskContext, wrapper: str, component: str, itemtype: str, *, userinfo: bool
) -> Nested:
    """``<wrapper><tag id><itemid/><rawname/></tag>...</wrapper>``: the
    wrapper is always written; its tags only when the area is enabled (and,
    for ``userinfo`` items, when users are included)."""
    tag = Nested("tag", attrs=("id",), fields=("itemid", "rawname"))
    if tags_enabled(ctx, component, itemtype):
        tag.set_source(Sql(_CONTEXT_TAGS, [itemtype, component, Param("contextid")]))
        tag.userinfo = userinfo
    else:
        # a source that yields nothing: Moodle's element without source
        # and with final elements is written no times
        tag.set_source(NO_ROWS)
    return Nested(wrapper, children=[tag])


def item_tags(ctx: TaskContext, component: str, itemtype: str, *, userinfo: bool) -> Nested:
    """``<tags><tag id><name/><rawname/></tag></tags>`` for the parent row's
    ``id``, read only when the area's tags are enabled (and, for user data,
    when users are included)."""
    tag = Nested("tag", attrs=("id",), fields=("name", "rawname"), userinfo=userinfo)
    if tags_enabled(ctx, component, itemtype):
        tag.set_source(Sql(TAGS_SQL, [itemtype, component, Up("id")]))
    return Nested("tags", children=[tag])
