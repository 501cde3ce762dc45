"""Shapes every activity shares (``backup_activity_structure_step``)."""

from __future__ import annotations

from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Rows


def activity_structure(ctx: TaskContext, element: Nested) -> Nested:
    """Wrap a module's element in ``<activity id moduleid modulename contextid>``,
    as ``prepare_activity_structure`` does."""
    row = {
        "id": ctx.param("activityid"),
        "moduleid": ctx.param("moduleid"),
        "modulename": ctx.param("modulename"),
        "contextid": ctx.param("contextid"),
    }
    wrapper = Nested(
        "activity",
        attrs=("id", "moduleid", "modulename", "contextid"),
        source=Rows(lambda _ctx, _parent: [row]),
    )
    return wrapper.add(element)
