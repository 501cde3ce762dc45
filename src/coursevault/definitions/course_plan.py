"""Which tasks a course backup has, in Moodle's order (``backup_plan_builder``).

The course task; then, section by section (``ORDER BY section``), the
section's task followed by its activities' tasks in the section's
``sequence`` (each followed by the activity's blocks); then the course's
blocks; then the final task.  An activity whose module has no definition is
left out and named in the run's warnings -- as Moodle's restore warns of
what it cannot restore -- never silently.

The core tasks' steps live in their own modules, with one contract each:
``course_task.steps(ctx)``, ``section_task.steps(ctx)``,
``activity_task.steps(ctx, plugin)``, ``block_task.steps(ctx, plugin)``,
``final_task.steps(ctx)`` and ``final_task.files(ctx)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from coursevault.definitions import activity_task, block_task, course_task, final_task, section_task
from coursevault.errors import SiteDataError
from coursevault.moodledb.site import Row, SiteReader
from coursevault.structure import registry
from coursevault.structure.context import BackupRun, TaskContext
from coursevault.structure.plan import Task
from coursevault.structure.registry import Step

CONTEXT_COURSE = 50
CONTEXT_MODULE = 70
CONTEXT_BLOCK = 80


def context_id(reader: SiteReader, level: int, instance: str) -> str:
    row = reader.one("context", {"contextlevel": level, "instanceid": instance})
    if row is None:
        raise SiteDataError(f"context {level}/{instance} is missing from the database")
    return str(row["id"])


def _contexts_below(reader: SiteReader, coursectx: str) -> dict[tuple[int, str], str]:
    """(level, instance) -> context id of every context inside the course
    (its modules' and blocks'), in one query rather than one per task."""
    top = reader.one("context", {"id": coursectx})
    path = str(top["path"]) if top is not None else ""
    found = {}
    for row in reader.sql("SELECT id, contextlevel, instanceid FROM {context} WHERE path LIKE ?",
                          [path + "/%"]):
        found[(int(str(row["contextlevel"])), str(row["instanceid"]))] = str(row["id"])
    return found


def _context(run: BackupRun, level: int, instance: str) -> str:
    found = run.memo["contexts"].get((level, instance))
    if found is None:
        raise SiteDataError(f"context {level}/{instance} is missing from the database")
    return str(found)


def course_plan(run: BackupRun) -> list[Task]:
    """Every task of the course backup, in the order Moodle runs them."""
    reader, course = run.reader, run.course
    courseid = str(course["id"])
    coursectx = context_id(reader, CONTEXT_COURSE, courseid)
    run.memo["coursecontextid"] = coursectx
    run.memo["contexts"] = _contexts_below(reader, coursectx)
    base = {"courseid": courseid, "coursecontextid": coursectx}
    tasks = [Task("course", "course", {**base, "contextid": coursectx}, course_task.steps)]
    modules = _modules_by_id(reader, courseid)
    plugins = registry.activities()
    left_out: dict[str, list[str]] = {}
    sections = list(reader.rows("course_sections", {"course": courseid}, order="section"))
    known = {str(section["id"]) for section in sections}
    for section in sections:
        sequence = str(section["sequence"] or "")
        sid = str(section["id"])
        tasks.append(Task(
            f"section {section['section']}", f"sections/section_{sid}",
            {**base, "contextid": coursectx, "sectionid": sid}, section_task.steps,
            facts={"sectionid": sid, "number": str(section["section"])},
        ))
        for cmid in sequence.split(","):
            cm = modules.get(cmid)
            if cm is None:
                continue
            _check_module(reader.prefix, courseid, cm, known)
            plugin = plugins.get(str(cm["modname"]))
            if plugin is None:
                left_out.setdefault(str(cm["modname"]), []).append(cmid)
                continue
            tasks.append(_activity_task(run, base, cm, sid, plugin))
            tasks.extend(_block_tasks(run, base, _context(run, CONTEXT_MODULE, cmid),
                                      f"activities/{cm['modname']}_{cmid}/blocks"))
    for modname, cmids in sorted(left_out.items()):
        run.warnings.append(
            f"no definition for mod_{modname}: {len(cmids)} activit"
            f"{'y' if len(cmids) == 1 else 'ies'} left out of the backup "
            f"(course module {', '.join(cmids)})")
    tasks.extend(_block_tasks(run, base, coursectx, "course/blocks"))
    tasks.append(Task("final", "", {**base, "contextid": coursectx}, final_task.steps,
                      extra=final_task.files))
    run.memo["tasks"] = tasks
    run.memo["plan_values"] = _plan_values(tasks)
    return tasks


# task parameters that are keys the engine may fetch for all tasks at once
_PREFETCHED = ("contextid", "moduleid", "activityid", "sectionid", "blockid")


def _plan_values(tasks: list[Task]) -> dict[tuple[str, str], list[str]]:
    """(parameter, module name for ``activityid``) -> its values across the tasks."""
    found: dict[tuple[str, str], dict[str, None]] = {}
    for task in tasks:
        for name in _PREFETCHED:
            if name in task.params:
                module = task.params.get("modulename", "") if name == "activityid" else ""
                found.setdefault((name, module), {})[task.params[name]] = None
    return {k: list(v) for k, v in found.items()}


def _modules_by_id(reader: SiteReader, courseid: str) -> dict[str, Row]:
    """The course's modules, each with its module name and its instance's name
    (``title`` in moodle_backup.xml): one query per module type, not per activity."""
    names = {str(r["id"]): r["name"] for r in reader.rows("modules", columns=("id", "name"))}
    found = {}
    for cm in reader.rows("course_modules", {"course": courseid}):
        if str(cm.get("deletioninprogress") or "0") != "0":
            continue
        cm["modname"] = names.get(str(cm["module"]))
        found[str(cm["id"])] = cm
    by_module: dict[str, list[Row]] = {}
    for cm in found.values():
        if cm["modname"]:
            by_module.setdefault(str(cm["modname"]), []).append(cm)
    for modname, cms in by_module.items():
        titles = {
            str(r["id"]): str(r.get("name") or "")
            for r in reader.rows(modname, {"id": [str(cm["instance"]) for cm in cms]},
                                 columns=("id", "name"))
        }
        for cm in cms:
            title = titles.get(str(cm["instance"]))
            cm["title"] = title or ""
            cm["instance_found"] = "1" if title is not None else None
    return found


def _check_module(prefix: str, courseid: str, cm: Row, sections: set[str]) -> None:
    """SiteDataError for a course module whose rows do not hold together,
    as Moodle's backup fails on it (``get_coursemodule_from_id`` must find
    the module and its instance): before, a missing instance was backed up
    as an activity without its element, an unknown module as "no definition
    for mod_None", a missing section as a malformed module.xml."""
    where = f"course {courseid}: course module {cm['id']}"
    if not cm["modname"]:
        raise SiteDataError(f"{where}: its module {cm['module']} is not in {prefix}modules")
    if not cm["instance_found"]:
        raise SiteDataError(f"{where}: its instance {cm['instance']} is not in "
                            f"{prefix}{cm['modname']}")
    if str(cm["section"]) not in sections:
        raise SiteDataError(f"{where}: its section {cm['section']} is not a section of the "
                            "course")


def _activity_task(
    run: BackupRun, base: dict[str, str], cm: Row, sectionid: str, plugin: registry.Plugin
) -> Task:
    cmid, modname = str(cm["id"]), str(cm["modname"])
    title = str(cm.get("title") or "")
    return Task(
        f"{modname} {cmid}", f"activities/{modname}_{cmid}",
        {**base, "contextid": _context(run, CONTEXT_MODULE, cmid),
         "moduleid": cmid, "activityid": str(cm["instance"]), "modulename": modname,
         "sectionid": sectionid},
        lambda ctx: activity_task.steps(ctx, plugin),
        facts={"moduleid": cmid, "sectionid": sectionid, "modulename": modname,
               "title": title},
    )


def _block_tasks(run: BackupRun, base: dict[str, str], parentctx: str, directory: str) -> list[Task]:
    plugins = registry.blocks()
    tasks = []
    for block in _blocks_in(run, parentctx):
        bid, name = str(block["id"]), str(block["blockname"])
        plugin = plugins.get(name)
        tasks.append(Task(
            f"block {name} {bid}", f"{directory}/{name}_{bid}",
            {**base, "contextid": _context(run, CONTEXT_BLOCK, bid), "blockid": bid,
             "blockname": name, "parentcontextid": parentctx},
            _block_steps(plugin),
            facts={"blockid": bid, "blockname": name},
        ))
    return tasks


def _blocks_in(run: BackupRun, parentctx: str) -> list[Row]:
    """Blocks of one context; those of the course and of all its modules are
    read in one query, the first time any is asked for."""
    memo: dict[str, list[Row]] | None = run.memo.get("blocks")
    if memo is None:
        parents = [run.memo["coursecontextid"]] + [
            cid for (level, _i), cid in run.memo["contexts"].items() if level == CONTEXT_MODULE]
        memo = {p: [] for p in parents}
        for block in run.reader.rows("block_instances", {"parentcontextid": parents},
                                     order="id"):
            memo.setdefault(str(block["parentcontextid"]), []).append(block)
        run.memo["blocks"] = memo
    if parentctx not in memo:
        memo[parentctx] = list(run.reader.rows("block_instances",
                                               {"parentcontextid": parentctx}, order="id"))
    return memo[parentctx]


def _block_steps(plugin: registry.Plugin | None) -> Callable[[TaskContext], Sequence[Step]]:
    return lambda ctx: block_task.steps(ctx, plugin)
