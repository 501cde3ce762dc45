"""Whether a tag area is on (``core_tag_tag::is_enabled``): tags enabled on
the site (``$CFG->usetags``) and the area's ``enabled`` flag.  Backups
leave the tags of a disabled area out."""

from __future__ import annotations

from coursevault.structure.context import TaskContext


def tag_area_enabled(ctx: TaskContext, component: str, itemtype: str) -> bool:
    memo: dict[tuple[str, str], bool] = ctx.run.memo.setdefault("tag_areas", {})
    key = (component, itemtype)
    if key not in memo:
        usetags = ctx.reader.one("config", {"name": "usetags"})
        area = ctx.reader.one("tag_area", {"component": component, "itemtype": itemtype})
        memo[key] = bool(usetags and usetags["value"] not in ("", "0", None)
                         and area is not None and area["enabled"] not in ("", "0", None))
    return memo[key]
