"""What a running backup knows: the site, the settings, the ids of the task
at hand and the ids annotated so far.

Annotations are Moodle's ``backup_ids_temp``: an element annotating
``('user', 'userid')`` records that user as needed.  Each task's inforef.xml
lists what was annotated while it ran; at the end of the task those ids move
to the backup-wide set the final task writes users.xml, groups.xml, roles.xml
and files.xml from.  Order is first-annotation order (Moodle reads its temp
table back without ORDER BY, which returns insertion order).
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from coursevault.moodledb.site import Row, SiteReader

# one context's files of one (component, filearea), in the database's order:
# all their ids, and the ids of each item
FileArea = tuple[list[str], dict[str, list[str]]]

# Moodle's backup settings, named as its root task names them.  Defaults are
# the site's own "General backup defaults" (config_plugins backup_general_*),
# what Moodle's admin CLI backup uses; these stand in where the site has none.
SETTINGS: dict[str, bool] = {
    "users": True,
    "anonymize": False,
    "role_assignments": True,
    "activities": True,
    "blocks": True,
    "files": True,
    "filters": True,
    "comments": True,
    "badges": True,
    "calendarevents": True,
    "userscompletion": True,
    "logs": False,
    "grade_histories": False,
    "groups": True,
    "competencies": True,
    "customfield": True,
    "contentbankcontent": True,
    "xapistate": True,
    "legacyfiles": True,
    "questionbank": True,
}
# Settings that depend on "users" (backup_root_task::define_settings): with
# users off, Moodle turns these off and locks them.
USER_DEPENDENT = ("anonymize", "role_assignments", "comments", "calendarevents",
                  "userscompletion", "logs", "grade_histories", "xapistate")
# the config names that differ from the setting names
_CONFIG_NAMES = {"grade_histories": "histories"}


def resolve_settings(defaults: dict[str, bool], given: dict[str, bool]) -> dict[str, bool]:
    """``given`` over ``defaults``, then Moodle's dependencies: no users, none
    of what depends on them."""
    unknown = set(given) - set(SETTINGS)
    if unknown:
        raise KeyError(f"unknown backup settings: {', '.join(sorted(unknown))}")
    settings = {**defaults, **given}
    if not settings["users"]:
        for name in USER_DEPENDENT:
            settings[name] = False
    return settings


def site_default_settings(
    reader: SiteReader, config: dict[str, str | None] | None = None
) -> dict[str, bool]:
    """Moodle's defaults for a manual backup, as the site configures them
    (``config``: the backup plugin's config_plugins, when already read)."""
    if config is None:
        config = {
            str(r["name"]): r["value"]
            for r in reader.rows("config_plugins", {"plugin": "backup"},
                                 columns=("name", "value"))
        }
    settings = dict(SETTINGS)
    for name in settings:
        value = config.get("backup_general_" + _CONFIG_NAMES.get(name, name))
        if value is not None and value != "":
            settings[name] = value == "1"
    return settings


class IdSet:
    """Ids per item type, in first-annotation order; ``order`` keeps the
    first annotations of every type in one sequence, as Moodle's temp table
    receives its rows (the final task reads some back in storage order).
    ``items`` maps each id to its place in ``order`` (:meth:`positions`)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, int]] = {}
        self.order: list[tuple[str, str]] = []

    def add(self, item: str, value: Any) -> None:
        """``backup_structure_dbops::insert_backup_ids_record``: ``scale``
        ids are stored negated (a scale grade is ``-scaleid``), and only
        true ids (> 0) are kept -- a forum's ``groupid`` -1 is no group."""
        if value is None or value == "":
            return
        try:
            number = int(value)
        except (TypeError, ValueError):
            self._record(item, str(value))
            return
        if item == "scale":
            number = -number
        if number <= 0:
            return
        self._record(item, str(number))

    def _record(self, item: str, text: str) -> None:
        ids = self.items.setdefault(item, {})
        if text not in ids:
            ids[text] = len(self.order)
            self.order.append((item, text))

    def get(self, item: str) -> list[str]:
        return list(self.items.get(item, {}))

    def __contains__(self, pair: tuple[str, str]) -> bool:
        return pair[1] in self.items.get(pair[0], {})

    def update(self, other: IdSet) -> None:
        for item, value in other.order:
            ids = self.items.setdefault(item, {})
            if value not in ids:
                ids[value] = len(self.order)
                self.order.append((item, value))

    def positions(self, pairs: Iterable[tuple[str, str]]) -> array[int]:
        """Where each of ``pairs`` (all in this set) is in ``order``: valid
        while ``order`` is only appended to, as the run's final set is."""
        items = self.items
        return array("I", (items[item][value] for item, value in pairs))


class Annotations(Sequence[tuple[str, str]]):
    """One task's annotation sequence, as places in the run's final set.

    A task's own pairs would each be a tuple and a string of its own: an M
    course's tasks annotate 62,000 pairs (each of 1,000 users in each of
    330 activities) of 1,260 distinct ones, 7 MB kept until the final task
    replays them (definitions/final_annotations.py).  As 4-byte places in
    ``final.order``, which holds each distinct pair once: 250 kB."""

    def __init__(self, final: IdSet, pairs: Iterable[tuple[str, str]]) -> None:
        self._order = final.order
        self._at = final.positions(pairs)

    def __len__(self) -> int:
        return len(self._at)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        order = self._order
        return (order[i] for i in self._at)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._order[i] for i in self._at[index]]
        return self._order[self._at[index]]


def site_hash(siteidentifier: str) -> str:
    """Moodle's ``original_site_identifier_hash``: how its backups name a
    site (and coursevault's course keys, by default)."""
    return hashlib.md5(siteidentifier.encode()).hexdigest()


@dataclass
class SiteInfo:
    """The site facts a backup writes (moodle_backup.xml and the encoders)."""

    wwwroot: str
    siteidentifier: str
    version: str
    release: str
    backup_version: str
    backup_release: str
    backup_key: str | None  # base64 AES-256 key for encrypted elements
    # config_plugins of the backup plugin (its defaults), name -> value
    backup_config: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def blank(cls) -> SiteInfo:
        """No site: for building the definitions' trees to read them (the
        restore, ``export --no-users``), where nothing is written out."""
        return cls("", "", "", "", "", "", None)


@dataclass
class BackupRun:
    """One course's backup: everything its tasks share."""

    reader: SiteReader
    site: SiteInfo
    settings: dict[str, bool]
    course: Row
    dataroot: str | None = None  # the site's data folder: DATAROOT/filedir holds file contents
    started: int = 0  # the backup's time (moodle_backup.xml's backup_date), epoch seconds
    final: IdSet = field(default_factory=IdSet)
    warnings: list[str] = field(default_factory=list)
    # per-run memo for plugins (e.g. module versions); never outlives the run
    memo: dict[str, Any] = field(default_factory=dict)

    def setting(self, name: str) -> bool:
        return self.settings[name]

    def config(self, name: str) -> Row | None:
        """The ``config`` row of ``name`` ($CFG), or None: the whole table is
        read once per run (a few hundred rows; a name is unique)."""
        rows: dict[str, Row] | None = self.memo.get("config")
        if rows is None:
            rows = {str(r["name"]): r for r in self.reader.rows("config")}
            self.memo["config"] = rows
        row = rows.get(name)
        return None if row is None else dict(row)

    def plugin_config(self, plugin: str, name: str) -> Row | None:
        """The ``config_plugins`` row of ``plugin``/``name``, or None: read
        once per run, whatever number of tasks ask."""
        cache: dict[tuple[str, str], Row | None] = self.memo.setdefault("plugin_config", {})
        if (plugin, name) not in cache:
            cache[(plugin, name)] = self.reader.one("config_plugins",
                                                    {"plugin": plugin, "name": name})
        row = cache[(plugin, name)]
        return None if row is None else dict(row)

    # memo entries holding rows read ahead for the plan's tasks (engine.py's
    # prefetch windows, activity grades)
    PREFETCHED = ("task_rows", "keyed_sql", "grade_grades")

    def release(self) -> None:
        """Let go of everything the tasks shared, once the run's members are
        all made.  A database backup stores its members after making them
        all (the archive index comes first), and that storing is where its
        memory peaks: at an M course's size the memo holds each task's
        annotation sequence and the final task's temp-table model (127,000
        rows), and ``final`` the run's annotations -- some 20 MB that would
        otherwise sit under the store's block caches.  Only ``warnings``
        stays (the outcome reports them)."""
        self.memo.clear()
        self.final = IdSet()

    def drop_prefetched(self) -> None:
        """Let go of rows read ahead for tasks that have run: a later ask
        reads them again (from the same transaction: the same rows)."""
        for key in self.PREFETCHED:
            self.memo.pop(key, None)

    def plan_values(self, param: str, modulename: str = "") -> list[str]:
        """The values a task parameter takes across the plan's tasks (those
        of one module for ``activityid``, whose ids are per module table);
        empty before the plan is made.  The engine fetches a table's rows for
        all of them at once (engine._task_rows)."""
        values: dict[tuple[str, str], list[str]] = self.memo.get("plan_values", {})
        return values.get((param, modulename if param == "activityid" else ""), [])

    def prefetch_files(self, contextids: Iterable[str]) -> None:
        """Read the files of these contexts in one query (per batch), for
        :meth:`files_of` to serve from memory (the final users' contexts)."""
        cache: dict[str, dict[tuple[str, str], FileArea]] = self.memo.setdefault("files", {})
        wanted = [c for c in dict.fromkeys(contextids) if c not in cache]
        if not wanted:
            return
        for c in wanted:
            cache[c] = {}
        for row in self.reader.rows(
            "files", {"contextid": wanted},
            columns=("id", "contextid", "component", "filearea", "itemid"),
        ):
            areas = cache[str(row["contextid"])]
            name = (str(row["component"]), str(row["filearea"]))
            area = areas.get(name)
            if area is None:
                area = areas[name] = ([], {})
            fileid = str(row["id"])
            area[0].append(fileid)
            area[1].setdefault(str(row["itemid"]), []).append(fileid)

    def files_of(
        self, contextid: str, component: str, filearea: str, itemid: Any = None
    ) -> list[str]:
        """Ids of the files of one area (directories included, as Moodle
        annotates them), in the database's order.  A context's files are
        read once per run, whatever number of areas and items ask -- and the
        first ask reads those of every context of the plan's tasks."""
        cache: dict[str, dict[tuple[str, str], FileArea]] = self.memo.setdefault("files", {})
        if contextid not in cache:
            planned = [c for c in self.plan_values("contextid") if c not in cache]
            self.prefetch_files(planned if contextid in planned else [contextid])
        area = cache[contextid].get((component, filearea))
        if area is None:
            return []
        # indexed by item: an assignment's 1,000 submissions each ask for
        # their own files among the area's thousands
        return list(area[0] if itemid is None else area[1].get(str(itemid), ()))


@dataclass
class TaskContext:
    """One task (course, section, activity, block or final) of a run."""

    run: BackupRun
    params: dict[str, str]
    ids: IdSet = field(default_factory=IdSet)

    @property
    def reader(self) -> SiteReader:
        return self.run.reader

    @property
    def users(self) -> bool:
        return self.run.settings["users"]

    def param(self, name: str) -> Any:
        if name in self.params:
            return self.params[name]
        if name in self.run.settings:
            return "1" if self.run.settings[name] else "0"
        raise KeyError(f"no task parameter or setting {name!r}")

    def annotate(self, item: str, values: Iterable[Any]) -> None:
        for value in values:
            self.ids.add(item, value)

    def finish(self) -> None:
        """Move this task's annotations to the backup-wide set; the run keeps
        each task's own sequence too (``memo["annotations"]``), as places in
        that set (:class:`Annotations`)."""
        final = self.run.final
        final.update(self.ids)
        self.run.memo.setdefault("annotations", []).append(Annotations(final, self.ids.order))
