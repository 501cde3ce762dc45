"""(being written)"""

from __future__ import annotations

from coursevault.structure.context import TaskContext
from coursevault.structure.registry import Plugin, Step


def steps(ctx: TaskContext, plugin: Plugin) -> list[Step]:
    return list(plugin.steps(ctx))
