"""Subplugin structures (``backup_activity_structure_step::add_subplugin_structure``).

A module hands one of its elements (the connection point: ``workshop``,
``assessment``, ``lti``...) to every installed subplugin of a type
(``datafield``, ``workshopform``, ``ltiservice``...) and each may hang its
own element under it.  A subplugin here is a :class:`Plugin` registered
under ``coursevault.backup.subplugins`` by its full name
(``workshopform_rubric``) whose ``extra`` maps each connection point it
serves to ``fn(ctx) -> Nested`` -- the convention mod_assign's subplugins
use too.  Subplugins are asked in name order, as Moodle lists them.

Moodle's optigroup around them writes no tag of its own: what a subplugin
returns is written as a child of the connection element, at the place the
module calls :func:`add_subplugin_structure`.
"""

from __future__ import annotations

from collections.abc import Callable

from coursevault.structure import registry
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested

SubpluginPart = Callable[[TaskContext], Nested]


def add_subplugin_structure(ctx: TaskContext, subtype: str, element: Nested) -> Nested:
    """Add each ``subtype`` subplugin's part for ``element`` under it (in
    place); returns ``element``."""
    found = registry.subplugins(subtype + "_")
    for name in sorted(found):
        build: SubpluginPart | None = found[name].extra.get(element.name)
        if build is not None:
            element.add(build(ctx))
    return element


def subplugin(name: str, **parts: SubpluginPart) -> registry.Plugin:
    """A subplugin definition: no members of its own, a part per connection point."""
    return registry.Plugin(name, steps=lambda _ctx: [], extra=dict(parts))
