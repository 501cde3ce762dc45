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

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from coursevault.moodle2.xmlwriter import Transformer
from coursevault.structure.context import BackupRun, TaskContext
from coursevault.structure.engine import Encrypt, render, render_into
from coursevault.structure.pluginguard import PluginError
from coursevault.structure.registry import Step


@dataclass(frozen=True)
class FileRef:
    """A member whose bytes are a file of the site's file store."""

    path: str  # absolute path in the dataroot
    contenthash: str
    size: int


@dataclass(frozen=True)
class Spooled:
    """A member :func:`execute` wrote into the caller's spool: where it is."""

    offset: int
    length: int


class MemberSpool(Protocol):
    """Where :func:`execute` appends members: a file, as far as it needs."""

    def write(self, data: bytes, /) -> int: ...

    def seek(self, offset: int, whence: int = ..., /) -> int: ...


Member = tuple[str, bytes | FileRef | Spooled]
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
    spool: MemberSpool | None = None,
) -> Iterator[Member]:
    """Run every task in order, yielding members as they are made.

    With a ``spool``, every member that is not a file of the file store is
    written at its end and yielded as :class:`Spooled`; a rendered one
    chunk by chunk as it is written (engine.render_into), never whole in
    memory.  Without one, members are bytes."""
    for done, task in enumerate(tasks):
        ctx = TaskContext(run, dict(task.params))
        prefix = f"{task.directory}/" if task.directory else ""
        written: set[str] = set()
        for step in task.steps(ctx):
            if step.when is not None and not run.settings.get(step.when, False):
                continue
            if step.member in written:  # a plugin's step named as one of the task's own
                raise PluginError(f"{task.name}: two steps write {prefix}{step.member}")
            written.add(step.member)
            yield prefix + step.member, _step_member(task, step, ctx, transform, encrypt, spool)
        if task.extra is not None:
            for path, data in task.extra(ctx):
                yield path, _spooled(data, spool) if isinstance(data, bytes) else data
        ctx.finish()
        if progress is not None:
            progress(task.name, done + 1, len(tasks))


def _step_member(
    task: Task,
    step: Step,
    ctx: TaskContext,
    transform: Transformer | None,
    encrypt: Encrypt | None,
    spool: MemberSpool | None,
) -> bytes | Spooled:
    """One step's member: rendered from its structure, or written by Python."""
    if step.build is not None:
        if spool is None:
            return render(step.build(ctx), ctx, transform=transform, encrypt=encrypt)
        offset = spool.seek(0, io.SEEK_END)
        length = render_into(spool.write, step.build(ctx), ctx, transform=transform,
                             encrypt=encrypt)
        return Spooled(offset, length)
    if step.write is not None:
        return _spooled(step.write(ctx), spool)
    raise ValueError(f"step {step.member} of {task.name} has nothing to write")


def _spooled(data: bytes, spool: MemberSpool | None) -> bytes | Spooled:
    """``data`` written at the end of ``spool``, if there is one."""
    if spool is None:
        return data
    offset = spool.seek(0, io.SEEK_END)
    spool.write(data)
    return Spooled(offset, len(data))
