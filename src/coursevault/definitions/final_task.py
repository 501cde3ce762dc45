"""The final task (``backup/moodle2/backup_final_task.class.php``): the
backup-wide members, written once every other task has annotated what it
needs.

Steps in Moodle's order -- which matters, because each step sees only the
annotations made before it: groups.xml (its members become final users),
questions.xml and the question files, the user files, users.xml, roles.xml
(with the roles users.xml's overrides add), gradebook.xml and
grade_history.xml (only when every activity grade item is in the backup),
completion.xml, badges.xml, scales.xml, outcomes.xml, then the migration of
the task's own annotations, files.xml and moodle_backup.xml.
``files(ctx)`` then hands on the file contents files.xml names, and the
empty moodle_backup.log Moodle's archive holds.
"""

from __future__ import annotations

from collections.abc import Iterator

from coursevault.definitions.final_badges import badges_structure
from coursevault.definitions.final_completion import completion_included, completion_structure
from coursevault.definitions.final_definitions import (
    outcomes_structure,
    roles_structure,
    scales_structure,
)
from coursevault.definitions.final_files import file_members, files_structure
from coursevault.definitions.final_gradebook import (
    grade_history_structure,
    gradebook_included,
    gradebook_structure,
)
from coursevault.definitions.final_groups import groups_structure
from coursevault.definitions.final_manifest import manifest_structure
from coursevault.definitions.final_questions import annotate_question_files, questions_structure
from coursevault.definitions.final_users import users_structure
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested
from coursevault.structure.plan import Member
from coursevault.structure.registry import Plugin, Step


def steps(ctx: TaskContext, plugin: Plugin | None = None) -> list[Step]:
    """The final task's members, in Moodle's order."""
    # the course, section and activity tasks are done: what they read ahead
    # for each other is not needed any more (a final read asks again)
    ctx.run.drop_prefetched()
    found = [
        Step("groups.xml", build=groups_structure),
        Step("questions.xml", build=_questions),
    ]
    if ctx.users:
        found.append(Step("users.xml", build=users_structure))
    found.append(Step("roles.xml", build=roles_structure))
    if gradebook_included(ctx):
        found += [Step("gradebook.xml", build=gradebook_structure),
                  Step("grade_history.xml", build=grade_history_structure)]
    if completion_included(ctx):
        found.append(Step("completion.xml", build=completion_structure))
    if ctx.run.setting("badges"):
        found.append(Step("badges.xml", build=badges_structure))
    found += [
        Step("scales.xml", build=scales_structure),
        Step("outcomes.xml", build=outcomes_structure),
        Step("files.xml", build=files_structure),
        Step("moodle_backup.xml", build=manifest_structure),
    ]
    return found


def _questions(ctx: TaskContext) -> Nested:
    """questions.xml, then ``backup_annotate_all_question_files``: the files
    are annotated as the step after it, before the user files."""
    structure = questions_structure(ctx)
    annotate_question_files(ctx)
    return structure


def files(ctx: TaskContext) -> Iterator[Member]:
    """The file contents (files/ab/<sha1>), then the empty moodle_backup.log."""
    yield from file_members(ctx)
    yield "moodle_backup.log", b""
