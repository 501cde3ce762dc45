"""Tags of module items: whether an area's tags are backed up
(``core_tag_tag::is_enabled``) and the ``<tags>`` element that wiki pages
carry in their module's XML."""

from __future__ import annotations

from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Sql, Up

TAGS_SQL = (
    "SELECT t.id, t.name, t.rawname FROM {tag} t "
    "JOIN {tag_instance} ti ON ti.tagid = t.id "
    "WHERE ti.itemtype = ? AND ti.component = ? AND ti.itemid = ?"
)


def tags_enabled(ctx: TaskContext, component: str, itemtype: str) -> bool:
    """``core_tag_tag::is_enabled``: the site uses tags (``$CFG->usetags``)
    and the area exists and is enabled; backups leave other tags out."""
    memo: dict[tuple[str, str], bool] = ctx.run.memo.setdefault("tag_areas", {})
    key = (component, itemtype)
    if key not in memo:
        usetags = ctx.reader.one("config", {"name": "usetags"})
        area = ctx.reader.one("tag_area", {"component": component, "itemtype": itemtype})
        memo[key] = bool(usetags and usetags["value"] not in ("", "0", None)
                         and area is not None and area["enabled"] not in ("", "0", None))
    return memo[key]


def item_tags(ctx: TaskContext, component: str, itemtype: str, *, userinfo: bool) -> Nested:
    """``<tags><tag id><name/><rawname/></tag></tags>`` for the parent row's
    ``id``, read only when the area's tags are enabled (and, for user data,
    when users are included)."""
    tag = Nested("tag", attrs=("id",), fields=("name", "rawname"), userinfo=userinfo)
    if tags_enabled(ctx, component, itemtype):
        tag.set_source(Sql(TAGS_SQL, [itemtype, component, Up("id")]))
    return Nested("tags", children=[tag])
