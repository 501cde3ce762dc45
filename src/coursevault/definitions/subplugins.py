"""Subplugin structures (``backup_activity_structure_step::add_subplugin_structure``).

A module hands one of its elements to every installed subplugin of a type
(``datafield``, ``workshopform``, ``ltiservice``...) and each may hang its
own element under it.  Here a subplugin is a :class:`Plugin` registered under
``coursevault.backup.subplugins`` by its full name (``workshopform_rubric``)
whose ``extra["structure"]`` is ``fn(ctx, element_name) -> Nested | None``;
``element_name`` is the connection point (``workshop``, ``assessment``...).
Subplugins are asked in name order, as Moodle lists them.

Moodle's optigroup around them writes no tag of its own: what a subplugin
returns is written as a child of the connection element, at the place the
module calls :func:`add_subplugin_structure`.
"""

from __future__ import annotations

from collections.abc import Callable

from coursevault.structure import registry
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested

SubpluginStructure = Callable[[TaskContext, str], "Nested | None"]


def add_subplugin_structure(ctx: TaskContext, subtype: str, element: Nested) -> Nested:
    """Add each ``subtype`` subplugin's element under ``element`` (in place);
    returns ``element``."""
    for plugin in registry.subplugins(subtype + "_").values():
        build: SubpluginStructure | None = plugin.extra.get("structure")
        if build is None:
            continue
        node = build(ctx, element.name)
        if node is not None:
            element.add(node)
    return element


def subplugin(name: str, structure: SubpluginStructure) -> registry.Plugin:
    """A subplugin definition: no members of its own, one structure."""
    return registry.Plugin(name, steps=lambda _ctx: [], extra={"structure": structure})
