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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

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


@cache
def _group(group: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        found[ep.name] = ep.load()
    return found


def activities() -> dict[str, Plugin]:
    return _group(ACTIVITIES)


def blocks() -> dict[str, Plugin]:
    return _group(BLOCKS)


def subplugins(prefix: str) -> dict[str, Plugin]:
    """Subplugins whose name starts with ``prefix`` (``assignsubmission_``)."""
    return {k: v for k, v in _group(SUBPLUGINS).items() if k.startswith(prefix)}
