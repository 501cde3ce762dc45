"""``export --no-users``: a backup's members as Moodle's backup without
users would have written them, by the definitions' user-info marking.

Each member is paired with the tree its step builds under the backup's own
settings and under the same settings with users off (with everything that
depends on them: role assignments, comments, events, completion data, logs,
grade history, xAPI state).  A member whose step the narrower backup does
not run is left out; in the others, the elements the narrower tree drops
are cut (structure/prune.py).  Then, as the narrower backup's annotations
would have it:

* inforef.xml lists, of the users and roles the task annotated, only those
  a kept element still annotates (a user named only by a forum post goes);
* the final roles.xml drops the roles only role assignments named;
* files.xml drops the files of the areas only cut elements named (post
  attachments, submission files) and the users' own files, and ``files/``
  the contents no kept file uses;
* moodle_backup.xml says users are off (the root settings, each section's
  and activity's ``userinfo``), and its name ends ``-nu`` as Moodle names
  such a backup.

The trees are built against an empty Moodle 4.5 schema in memory: a tree
is read, not run, so no site is needed.  Elements of a plugin without a
definition are left as they are.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from coursevault.definitions import activity_task, block_task, course_task, final_task, section_task
from coursevault.definitions.restore_info import read_backup_info, require_course_backup
from coursevault.errors import BadInputError
from coursevault.moodledb.schema import create_schema, moodle_metadata
from coursevault.moodledb.site import SiteReader
from coursevault.structure import registry
from coursevault.structure.context import (
    SETTINGS,
    BackupRun,
    SiteInfo,
    TaskContext,
    resolve_settings,
)
from coursevault.structure.elements import Nested
from coursevault.structure.prune import Annotation, Area, by_item, prune
from coursevault.structure.registry import Plugin, Step

# what the empty schema must say for every optional member's step to exist
_CONFIG = {"enablecompletion": "1", "usetags": "1"}
_ACTIVITY = re.compile(r"activities/([a-z0-9]+)_(\d+)/(?:blocks/([a-z0-9_]+)_(\d+)/)?([^/]+)$")
_COURSE_BLOCK = re.compile(r"course/blocks/([a-z0-9_]+)_(\d+)/([^/]+)$")
_SECTION = re.compile(r"sections/section_(\d+)/([^/]+)$")
_REF = re.compile(r"(?s)\n?[ \t]*<(\w+)>\s*<id>([^<]*)</id>\s*</\1>")
_FILE = re.compile(r"(?s)\n?[ \t]*<file id=\"([^\"]*)\">(.*?)</file>")
_ROLE = re.compile(r"(?s)\n?[ \t]*<role id=\"([^\"]*)\">.*?</role>")
_SETTING = re.compile(
    r"(?s)(<setting>\s*<level>(\w+)</level>.*?<name>([^<]+)</name>\s*<value>)([^<]*)(</value>)"
)


_Steps = Callable[[TaskContext], Sequence[Step]]
# members that hold no user data whatever the settings, or are narrowed
# here by hand: block.xml (an instance's settings; its tree reads the
# instance's own row, which is not here), inforef.xml, the manifest, files.xml
_NO_USER_DATA = frozenset(
    {
        "block.xml",
        "inforef.xml",
        "moodle_backup.xml",
        "files.xml",
        "moodle_backup.log",
        ".ARCHIVE_INDEX",
    }
)


# The annotations user data makes that nothing else may: a user, a role only
# role assignments name.  Groups and groupings are annotated by the course
# task's own execution steps too (every group of the course), which leave
# no trace in a member: what user data (an event, a submission) annotated
# of them stays annotated without users.
_NAMED_BY_USER_DATA = frozenset({"user", "role"})
# the final task's members before roles.xml (final_task.steps)
_BEFORE_FINAL_ROLES = frozenset({"groups.xml", "questions.xml", "users.xml"})


@dataclass
class _Member:
    """What one member becomes: left out, cut by a pair of trees, or kept
    as it is -- ``unchecked`` when no definition says what it holds."""

    task: str
    leave_out: bool = False
    trees: tuple[Nested, Nested] | None = None
    unchecked: bool = False
    whole_task: bool = False  # a plugin without definitions: its task, unchecked


@dataclass
class _Tally:
    kept: set[Annotation] = field(default_factory=set)
    cut: set[Annotation] = field(default_factory=set)


_SITES = threading.local()


def _empty_site() -> sa.Connection:
    """An empty Moodle 4.5 site in memory that the trees are built over (only
    read, never written, so one per thread serves every export: making its
    494 tables took 0.65 s an export)."""
    conn: sa.Connection | None = getattr(_SITES, "conn", None)
    if conn is None:
        conn = sa.create_engine("sqlite://").connect()
        create_schema(conn, moodle_metadata())
        conn.execute(
            sa.text("INSERT INTO mdl_config (name, value) VALUES (:n, :v)"),
            [{"n": k, "v": v} for k, v in _CONFIG.items()],
        )
        conn.execute(
            sa.text(
                "INSERT INTO mdl_config_plugins (plugin, name, value) "
                "VALUES ('core_competency', 'enabled', '1')"
            )
        )
        conn.commit()  # what a reader's rollback must not take away
        _SITES.conn = conn
    return conn


class NoUsers:
    """The rewrite of one backup's members; ``prepare`` reads them all once."""

    def __init__(self, manifest: bytes) -> None:
        info = read_backup_info(manifest)
        require_course_backup(info)
        given = {k: v == "1" for k, v in info.settings.items() if k in SETTINGS}
        # what the archive says it ran, over Moodle 4.5's dependencies: an
        # older Moodle wrote calendar events without users
        self.full_settings = {**resolve_settings(dict(SETTINGS), given), **given}
        self.narrow_settings = resolve_settings(self.full_settings, {"users": False})
        conn = _empty_site()
        self._runs = {
            name: BackupRun(
                SiteReader(conn, "mdl_"),
                SiteInfo.blank(),
                settings,
                {"id": "0"},
            )
            for name, settings in (("full", self.full_settings), ("narrow", self.narrow_settings))
        }
        self._plans: dict[str, _Member] = {}
        self._tasks: dict[str, _Tally] = {}
        # what the final roles.xml saw: every task's, and the final task's
        # members written before it (a completion criterion's role, annotated
        # after it, never makes it in)
        self._roles_seen = _Tally()
        self._kept_areas: set[Area] = set()
        self._cut_areas: set[Area] = set()
        self.dropped_files: set[str] = set()
        self.left_out: set[str] = set()
        self.unchecked: list[str] = []  # kept as they are: no definition covers them

    def close(self) -> None:
        """Nothing to release: the empty site is kept for the next export."""

    # -- pairing members with steps -------------------------------------

    def _plan(self, path: str) -> _Member:
        if path not in self._plans:
            self._plans[path] = self._make_plan(path)
        return self._plans[path]

    def _make_plan(self, path: str) -> _Member:
        task, name, steps, plugin = self._task_of(path)
        if steps is None:
            return _Member(
                task,
                unchecked=name not in _NO_USER_DATA,
                whole_task=plugin is None and task.startswith("activities/"),
            )
        full = {s.member: s for s in steps(self._ctx("full", task))}
        narrow_ctx = self._ctx("narrow", task)
        narrow = {s.member: s for s in steps(narrow_ctx)}
        step = full.get(name)
        if step is None or name in _NO_USER_DATA:
            return _Member(task, unchecked=step is None and name not in _NO_USER_DATA)
        other = narrow.get(name)
        if other is None or (
            other.when is not None and not self.narrow_settings.get(other.when, False)
        ):
            # read all the same: what it annotated goes unless kept elsewhere
            build = self._build(step, plugin)
            tree = None if build is None else build(self._ctx("full", task))
            return _Member(task, leave_out=True, trees=None if tree is None else (tree, tree))
        build, other_build = self._build(step, plugin), self._build(other, plugin)
        if build is None or other_build is None:
            return _Member(task, unchecked=name not in _NO_USER_DATA)
        return _Member(task, trees=(build(self._ctx("full", task)), other_build(narrow_ctx)))

    @staticmethod
    def _build(step: Step, plugin: Plugin | None) -> Callable[[TaskContext], Nested] | None:
        """The tree of a step; a step that writes its member by hand (quiz.xml)
        gives it through its plugin's ``restore_trees``, as for the restore."""
        if step.build is not None:
            return step.build
        trees = {} if plugin is None else plugin.extra.get("restore_trees", {})
        found: Callable[[TaskContext], Nested] | None = trees.get(step.member)
        return found

    def _ctx(self, which: str, task: str) -> TaskContext:
        params = {
            "courseid": "0",
            "coursecontextid": "0",
            "contextid": "0",
            "sectionid": "0",
            "activityid": "0",
            "moduleid": "0",
            "modulename": "",
            "blockid": "0",
            "blockname": "",
            "parentcontextid": "0",
        }
        return TaskContext(self._runs[which], params)

    def _task_of(self, path: str) -> tuple[str, str, _Steps | None, Plugin | None]:
        """The task a member belongs to, its name there, the task's steps
        and the plugin they come from."""
        if m := _ACTIVITY.match(path):
            mod, cmid, block, bid, name = m.groups()
            if block is not None:
                plugin = registry.blocks().get(block)
                return (
                    f"activities/{mod}_{cmid}/blocks/{block}_{bid}",
                    name,
                    _block_steps(plugin),
                    plugin,
                )
            plugin = registry.activities().get(mod)
            steps = None if plugin is None else _activity_steps(plugin)
            return f"activities/{mod}_{cmid}", name, steps, plugin
        if m := _COURSE_BLOCK.match(path):
            block, bid, name = m.groups()
            plugin = registry.blocks().get(block)
            return f"course/blocks/{block}_{bid}", name, _block_steps(plugin), plugin
        if m := _SECTION.match(path):
            return f"sections/section_{m.group(1)}", m.group(2), section_task.steps, None
        if path.startswith("course/") and path.count("/") == 1:
            return "course", path[len("course/") :], course_task.steps, None
        if "/" not in path:
            return "", path, final_task.steps, None
        return path.rsplit("/", 1)[0], path.rsplit("/", 1)[1], None, None

    # -- the two passes --------------------------------------------------

    def prepare(self, members: Sequence[str], read: Callable[[str], bytes | None]) -> None:
        """Walk every XML member once: which are left out, and what the
        kept and the cut elements annotate."""
        for path in members:
            if not path.endswith(".xml") or path in ("moodle_backup.xml", "files.xml"):
                continue
            if path == "roles.xml":
                continue  # the final roles, narrowed by hand from the others
            plan = self._plan(path)
            if plan.leave_out:
                self.left_out.add(path)
            if plan.unchecked and not plan.leave_out:
                what = plan.task + "/" if plan.whole_task else path
                if what not in self.unchecked:
                    self.unchecked.append(what)
            if plan.trees is None:
                continue
            data = read(path)
            if data is None:
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise BadInputError(f"member {path} is not UTF-8 (Moodle writes only UTF-8): "
                                    "--no-users cannot rewrite it") from None
            result = prune(text, *plan.trees, users=plan.leave_out)
            tally = self._tasks.setdefault(plan.task, _Tally())
            kept = set() if plan.leave_out else result.kept
            cut = result.cut | (result.kept if plan.leave_out else set())
            tally.kept |= kept
            tally.cut |= cut
            if plan.task != "" or path in _BEFORE_FINAL_ROLES:
                self._roles_seen.kept |= kept
                self._roles_seen.cut |= cut
            self._kept_areas |= set() if plan.leave_out else result.kept_areas
            self._cut_areas |= result.cut_areas | (result.kept_areas if plan.leave_out else set())
        self.left_out.add("users.xml")
        files = read("files.xml")
        if files is not None:
            self._files(files.decode("utf-8"))

    def _files(self, text: str) -> None:
        kept_hashes: set[str] = set()
        dropped_hashes: set[str] = set()
        for m in _FILE.finditer(text):
            fid, body = m.group(1), m.group(2)
            area = (_value(body, "component"), _value(body, "filearea"), _value(body, "itemid"))
            digest = _value(body, "contenthash")
            if _is_dropped(area, self._cut_areas, self._kept_areas):
                self.dropped_files.add(fid)
                dropped_hashes.add(digest)
            else:
                kept_hashes.add(digest)
        self.left_out |= {f"files/{h[:2]}/{h}" for h in dropped_hashes - kept_hashes}

    def member(self, path: str, data: bytes) -> bytes:
        """The member as the backup without users writes it (``left_out``
        holds those it does not write at all)."""
        if not path.endswith(".xml"):
            return data
        text = data.decode("utf-8")
        if path == "moodle_backup.xml":
            return _manifest(text, self.narrow_settings).encode("utf-8")
        if path == "files.xml":
            return _FILE.sub(
                lambda m: "" if m.group(1) in self.dropped_files else m.group(0), text
            ).encode("utf-8")
        # planned by prepare (the schema it built trees with is closed now)
        plan = self._plans.get(path) or _Member(path.rsplit("/", 1)[0] if "/" in path else "")
        if plan.trees is not None:
            text = prune(text, *plan.trees, users=False).data
        if path.endswith("/inforef.xml") or path == "inforef.xml":
            tally = self._tasks.get(plan.task, _Tally())
            gone = {
                item: ids
                for item, ids in by_item(tally.cut - tally.kept).items()
                if item in _NAMED_BY_USER_DATA
            }
            text = _narrow_refs(text, gone, self.dropped_files)
        elif path == "roles.xml":
            roles = by_item(self._roles_seen.cut - self._roles_seen.kept).get("role", set())
            text = _ROLE.sub(lambda m: "" if m.group(1) in roles else m.group(0), text)
        return text.encode("utf-8")


def _activity_steps(plugin: Plugin) -> Callable[[TaskContext], Sequence[Step]]:
    return lambda ctx: activity_task.steps(ctx, plugin)


def _block_steps(plugin: Plugin | None) -> Callable[[TaskContext], Sequence[Step]]:
    return lambda ctx: block_task.steps(ctx, plugin)


def _value(body: str, name: str) -> str:
    m = re.search(rf"<{name}>([^<]*)</{name}>", body)
    return "" if m is None else m.group(1)


def _is_dropped(area: tuple[str, str, str], cut: set[Area], kept: set[Area]) -> bool:
    component, filearea, itemid = area
    if component == "user":
        return True  # the users' own files: users.xml is not written

    def named(areas: set[Area]) -> bool:
        return (component, filearea, itemid) in areas or (component, filearea, None) in areas

    return named(cut) and not named(kept)


def _narrow_refs(text: str, gone: dict[str, set[str]], files: set[str]) -> str:
    def one(m: re.Match[str]) -> str:
        item, value = m.group(1), m.group(2)
        if item == "file":
            return "" if value in files else m.group(0)
        return "" if value in gone.get(item, set()) else m.group(0)

    text = _REF.sub(one, text)
    # a list left empty is not written at all
    return re.sub(r"\n?[ \t]*<((?!inforef)\w+ref)>\s*</\1>", "", text)


def _manifest(text: str, settings: dict[str, bool]) -> str:
    def one(m: re.Match[str]) -> str:
        level, name, value = m.group(2), m.group(3), m.group(4)
        off = settings.get(name, True) is False if level == "root" else name.endswith("_userinfo")
        if off:
            value = "0"
        elif level == "root" and name == "filename":
            value = _nu(value)
        return m.group(1) + value + m.group(5)

    text = _SETTING.sub(one, text)
    return re.sub(
        r"(<information>\s*<name>)([^<]*)(</name>)",
        lambda m: m.group(1) + _nu(m.group(2)) + m.group(3),
        text,
        count=1,
    )


def _nu(name: str) -> str:
    """``backup_plan_dbops::get_default_backup_filename``: ``-nu`` for a
    backup without users."""
    if name.endswith(".mbz") and not name.endswith("-nu.mbz"):
        return name[: -len(".mbz")] + "-nu.mbz"
    return name
