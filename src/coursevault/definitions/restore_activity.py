"""One activity folder into the course: its module, its own tables, its
grades, roles, completion and events (``restore_activity_task``).

The activity's own members are read back against the same steps its backup
plugin declares (``Plugin.steps``), so an activity restores exactly when
it backs up -- a third-party module's entry point gives both.  References
inside a plugin's tables that no annotation names (a choice answer's
``optionid``, a post's ``parent``, a discussion's ``firstpost``) are the
plugin's ``extra["restore_refs"]`` plus the common ones below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from coursevault.definitions import restore_common, restore_course, restore_final
from coursevault.definitions.restore_info import ActivityInfo
from coursevault.errors import BadInputError
from coursevault.structure.context import TaskContext
from coursevault.structure.registry import Plugin
from coursevault.structure.restore_engine import RestoreContext, insert_records
from coursevault.structure.reverse import MemberReader, XmlSource

# (table, column) -> table: references between an activity's own rows
COMMON_REFS: dict[tuple[str, str], str] = {
    ("choice_answers", "optionid"): "choice_options",
    ("forum_discussions", "firstpost"): "forum_posts",
    ("forum_posts", "parent"): "forum_posts",
    ("forum_discussions", "groupid"): "groups",
    ("assign_submission", "groupid"): "groups",
    ("glossary_entries_categories", "entryid"): "glossary_entries",
    ("book_chapters", "importsrc"): "book_chapters",
    ("feedback_value", "item"): "feedback_item",
    ("lesson_answers", "lessonid"): "lesson",
    ("lesson_attempts", "pageid"): "lesson_pages",
    ("lesson_branch", "lessonid"): "lesson",
    ("data_content", "fieldid"): "data_fields",
    ("workshop_assessments", "gradinggradeoverby"): "user",
    ("grading_instances", "raterid"): "user",
    ("event", "groupid"): "groups",
}
# members of an activity folder the restore does not write (yet), and why
NOT_RESTORED = {
    "inforef.xml": "an index of the others",
    "grade_history.xml": "grade history is not restored",
    "competencies.xml": "competencies are not restored",
    "xapistate.xml": "xAPI state is not restored",
    "filters.xml": "filter settings are not restored",
}

Members = Callable[[str], bytes | None]
Streams = Callable[[str], XmlSource | None]


def restore_activity(
    rc: RestoreContext, ctx: TaskContext, act: ActivityInfo, plugin: Plugin,
    members: Members, contexts: dict[str, int], streams: Streams | None = None,
) -> bool:
    """Write the activity; False (with a warning) when the site lacks its module.

    ``streams`` gives the members that grow with the course -- the
    activity's own tables (600 submissions: 1 MB), its grades and roles --
    in pieces as they are read, parsed as they come (``members`` without)."""
    pieces: Streams = streams or members
    module = restore_course.module_id(rc, act.modulename)
    module_xml = members(f"{act.directory}/module.xml")
    if module is None:
        rc.warnings.append(f"{act.directory}: module {act.modulename!r} is not installed "
                           "in this site: left out")
        return False
    # the trees are built as the backup built them, with the backup's ids
    ctx = TaskContext(ctx.run, {"activityid": "0", "moduleid": act.moduleid,
                                "modulename": act.modulename, "contextid": "0",
                                "courseid": str(rc.param("courseid")),
                                "sectionid": act.sectionid})
    trees = plugin.extra.get("restore_trees", {})
    steps = plugin.steps(ctx)
    own = [step.member for step in steps if step.build or trees.get(step.member)]
    # a damaged backup, not the site's lack: left out before anything is written
    # (its course module was, and stayed behind with instance 0)
    lacks = "module.xml" if module_xml is None else None
    if lacks is None and own and all(pieces(f"{act.directory}/{m}") is None for m in own):
        lacks = own[0]
    if module_xml is None or lacks is not None:
        rc.warnings.append(f"{act.directory}: the backup has no {lacks}: left out")
        return False
    cmid, ctxid = restore_course.restore_module(rc, module_xml, module)
    task = rc.with_params(moduleid=cmid, contextid=ctxid, modulename=act.modulename)
    refs: Mapping[tuple[str, str], str] = {
        **COMMON_REFS, **plugin.extra.get("restore_refs", {})}
    hooks = {act.modulename: restore_final.negative_scale,
             **plugin.extra.get("restore_hooks", {})}
    writers = {"tag": restore_common.restore_tag_record,
               **plugin.extra.get("restore_writers", {})}
    for step in steps:
        build = step.build or trees.get(step.member)
        data = None if build is None else pieces(f"{act.directory}/{step.member}")
        if build is None or data is None:
            continue
        reader = MemberReader(f"{act.directory}/{step.member}", data)
        insert_records(task, _records_with_context(reader, build(ctx), contexts, ctxid),
                       refs=refs, hooks=hooks, writers=writers)
        _note_unknown(rc, reader)
    instance = task.params.get("activityid")
    if instance is None:
        # its course module and context are written by now: "left out" left
        # them behind, a module of instance 0 in its section, on which
        # Moodle's course page fails -- a damaged backup, refused whole
        raise BadInputError(f"{act.directory}/{own[0] if own else ''}: no {act.modulename} "
                            "row in it: the backup is damaged")
    rc.writer.update("course_modules", cmid, {"instance": instance})
    restore_common.activity_members(task, ctx, act.directory, members,
                                    comment_items=plugin.extra.get("comment_items", {}))
    restore_common.each_member(pieces, act.directory, [
        ("grades.xml", lambda path, data: restore_final.restore_activity_grades(
            task, ctx, path, data)),
        ("grading.xml", lambda path, data: restore_final.restore_grading(task, ctx, path, data)),
        ("roles.xml", lambda path, data: restore_final.restore_roles(task, ctx, path, data)),
    ])
    return True


def _records_with_context(reader: MemberReader, tree: Any, contexts: dict[str, int],
                          ctxid: int) -> Any:
    for rec in reader.records(tree):
        if rec.name == "activity" and rec.values.get("contextid"):
            contexts[str(rec.values["contextid"])] = ctxid
        yield rec


def _note_unknown(rc: RestoreContext, reader: MemberReader) -> None:
    for path, count in reader.unknown.items():
        rc.unmapped[f"element {path} (not in the definition)"] += count
