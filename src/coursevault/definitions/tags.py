"""Tags of module items (``core_tag_tag::is_enabled`` and the ``<tags>``
element wiki pages, database records... carry in their module's XML)."""

from __future__ import annotations

from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Sql, Up

TAGS_SQL = (
    "SELECT t.id, t.name, t.rawname FROM {tag} t "
    "JOIN {tag_instance} ti ON ti.tagid = t.id "
    "WHERE ti.itemtype = ? AND ti.component = ? AND ti.itemid = ?"
)


def tags_enabled(ctx: TaskContext, component: str, itemtype: str) -> bool:
    """``core_tag_tag::is_enabled``: the site uses tags and the area is not
    disabled (an area missing from ``tag_area`` counts as enabled)."""
    memo: dict[tuple[str, str], bool] = ctx.run.memo.setdefault("tag_areas", {})
    key = (component, itemtype)
    if key not in memo:
        usetags = ctx.reader.one("config", {"name": "usetags"})
        area = ctx.reader.one("tag_area", {"component": component, "itemtype": itemtype})
        memo[key] = (usetags is None or usetags["value"] != "0") and (
            area is None or area["enabled"] != "0")
    return memo[key]


def item_tags(ctx: TaskContext, component: str, itemtype: str, *, userinfo: bool) -> Nested:
    """``<tags><tag id><name/><rawname/></tag></tags>`` for the parent row's
    ``id``, read only when the area's tags are enabled (and, for user data,
    when users are included)."""
    tag = Nested("tag", attrs=("id",), fields=("name", "rawname"), userinfo=userinfo)
    if tags_enabled(ctx, component, itemtype):
        tag.set_source(Sql(TAGS_SQL, [itemtype, component, Up("id")]))
    return Nested("tags", children=[tag])
