"""(being written)"""

from __future__ import annotations

from collections.abc import Iterator

from coursevault.structure.context import TaskContext
from coursevault.structure.plan import Member
from coursevault.structure.registry import Plugin, Step


def steps(ctx: TaskContext, plugin: Plugin | None = None) -> list[Step]:
    return []


def files(ctx: TaskContext) -> Iterator[Member]:
    return iter(())
