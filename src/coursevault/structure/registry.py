"""Where definitions come from: Python entry points.

coursevault's own definitions register exactly as a third-party plugin
would (pyproject.toml), so an activity module outside Moodle's standard set
adds its own by shipping a package with an entry point -- nothing in
coursevault changes:

    [project.entry-points."coursevault.backup.activities"]
    choice = "coursevault.definitions.mod_choice:PLUGIN"

Groups: ``coursevault.backup.activities`` (key: the module name),
``coursevault.backup.blocks`` (the block name) and
``coursevault.backup.subplugins`` (``assignsubmission_file``...: the
plugin that owns the subplugin type asks for them by prefix).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from coursevault.structure.pluginguard import OWN, PluginError, guarded

if TYPE_CHECKING:
    from coursevault.structure.context import BackupRun, TaskContext
    from coursevault.structure.elements import Nested

ACTIVITIES = "coursevault.backup.activities"
BLOCKS = "coursevault.backup.blocks"
SUBPLUGINS = "coursevault.backup.subplugins"

# (content, courseid, wwwroot) -> content with this plugin's links encoded
LinkEncoder = Callable[[str, "LinkContext"], str]


@dataclass(frozen=True)
class LinkContext:
    """What link encoders need: the site's address and the course."""

    wwwroot: str
    courseid: str
    # the running backup, for the few encoders that read the site
    # (mod_resource looks links up in resource_old)
    run: BackupRun | None = None


@dataclass
class Step:
    """One member a task writes: from a structure (``build``) or bytes made
    by code (``write``: Moodle's execution steps and custom writers).
    ``when`` names a backup setting the member depends on."""

    member: str
    build: Callable[[TaskContext], Nested] | None = None
    write: Callable[[TaskContext], bytes] | None = None
    when: str | None = None


@dataclass
class Plugin:
    """A plugin's definitions: the members it adds to its task, in order,
    and the link encoder Moodle's task class declares
    (``encode_content_links``)."""

    name: str
    steps: Callable[[TaskContext], Sequence[Step]]
    encode_links: LinkEncoder | None = None
    # extra facts a task asks of the plugin (e.g. an activity's grading areas)
    extra: dict[str, Any] = field(default_factory=dict)


class PluginGroup(Mapping[str, Any]):
    """One group's plugins by name, in name order, each loaded -- its module
    imported -- when first looked up: a course's backup imports the
    definitions of the plugins it holds, not of every plugin installed
    (coursevault ships 60; a course of pages and forums needs a handful)."""

    def __init__(self, entries: Iterable[EntryPoint]) -> None:
        self._entries: dict[str, EntryPoint] = {}
        self.conflicts: list[str] = []  # said by each backup run (definitions/run.py)
        for ep in sorted(entries, key=lambda e: (e.name, not _own(e), e.value)):
            kept = self._entries.setdefault(ep.name, ep)
            if kept is not ep:  # coursevault's own first, then the first by value
                self.conflicts.append(
                    f"plugins {kept.value} and {ep.value} both define {ep.group} {ep.name!r}: "
                    f"{kept.value} is used")
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            ep = self._entries[name]
            if _own(ep):
                self._loaded[name] = ep.load()
            else:  # another package's: its failures are its own (pluginguard)
                who = f"plugin {ep.value} ({ep.group} {name!r})"
                try:
                    loaded = ep.load()
                except Exception as exc:
                    raise PluginError(f"{who}: cannot be loaded: {type(exc).__name__}: "
                                      f"{exc}") from exc
                self._loaded[name] = guarded(loaded, who)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def module(self, name: str) -> str:
        """The module that defines ``name`` (known without importing it)."""
        return self._entries[name].module


def _own(ep: EntryPoint) -> bool:
    return ep.module.startswith(OWN)


@cache
def _group(group: str) -> PluginGroup:
    return PluginGroup(entry_points(group=group))


def activities() -> PluginGroup:
    return _group(ACTIVITIES)


def blocks() -> PluginGroup:
    return _group(BLOCKS)


def conflicts() -> list[str]:
    """Names two installed packages both define, and which one is used."""
    return [c for group in (ACTIVITIES, BLOCKS, SUBPLUGINS) for c in _group(group).conflicts]


def subplugins(prefix: str) -> dict[str, Plugin]:
    """Subplugins whose name starts with ``prefix`` (``assignsubmission_``),
    loading only those."""
    group = _group(SUBPLUGINS)
    return {k: group[k] for k in group if k.startswith(prefix)}
