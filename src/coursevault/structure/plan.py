"""A backup plan: tasks of steps, run in order into members.

Moodle's plan for a course is: the course task, then each section's task
followed by its activities' tasks, then the course's blocks, then the final
task (``backup_plan_builder``).  Which tasks a course has is Moodle
knowledge (definitions/course_plan.py); running them is not, and lives here:
each step's structure is rendered with the run's content transformer, each
task's annotations move to the backup-wide set when it ends, and members are
handed on one at a time -- bytes for XML, a :class:`FileRef` for file
contents the caller streams from the file store.

Progress is reported through a callback, apart from the work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from coursevault.moodle2.xmlwriter import Transformer
from coursevault.structure.context import BackupRun, TaskContext
from coursevault.structure.engine import Encrypt, render
from coursevault.structure.registry import Step


@dataclass(frozen=True)
class FileRef:
    """A member whose bytes are a file of the site's file store."""

    path: str  # absolute path in the dataroot
    contenthash: str
    size: int


Member = tuple[str, bytes | FileRef]
# (task name, tasks done, tasks in all)
Progress = Callable[[str, int, int], None]


@dataclass
class Task:
    """One task: a directory of members (``activities/choice_208``, ``""``
    for the final task's top-level members) and the steps that write them.
    ``extra`` yields members that are not steps' (the files/ of the final
    task)."""

    name: str
    directory: str
    params: dict[str, str]
    steps: Callable[[TaskContext], Sequence[Step]]
    extra: Callable[[TaskContext], Iterator[Member]] | None = None
    facts: dict[str, str] = field(default_factory=dict)


def execute(
    tasks: Sequence[Task],
    run: BackupRun,
    *,
    transform: Transformer | None,
    encrypt: Encrypt | None,
    progress: Progress | None = None,
) -> Iterator[Member]:
    """Run every task in order, yielding members as they are made."""
    for done, task in enumerate(tasks):
        ctx = TaskContext(run, dict(task.params))
        prefix = f"{task.directory}/" if task.directory else ""
        for step in task.steps(ctx):
            if step.when is not None and not run.settings.get(step.when, False):
                continue
            if step.build is not None:
                data = render(step.build(ctx), ctx, transform=transform, encrypt=encrypt)
            elif step.write is not None:
                data = step.write(ctx)
            else:
                raise ValueError(f"step {step.member} of {task.name} has nothing to write")
            yield prefix + step.member, data
        if task.extra is not None:
            yield from task.extra(ctx)
        ctx.finish()
        if progress is not None:
            progress(task.name, done + 1, len(tasks))
