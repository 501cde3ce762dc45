"""Printing for the CLI: JSON for scripts, rich tables and progress for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    out: Console
    err: Console

_CONSOLES: dict[str, Console] = {}


# Control characters a printed name may hold -- a course's shortname in the
# site's database, a member name in an archive, a course key in a shared
# repository's record -- shown escaped (``\x1b``), never sent to the terminal:
# ESC starts sequences that retitle the window, clear the screen, or write
# the clipboard.  Line breaks and tabs stay: the messages themselves use them.
_CONTROLS = {
    c: f"\\x{c:02x}"
    for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))
    if c not in (0x09, 0x0A)
}


def visible(text: str) -> str:
    """``text`` with its control characters escaped (see ``_CONTROLS``)."""
    return text.translate(_CONTROLS)


def __getattr__(name: str) -> Console:
    """``out`` and ``err``, rich consoles made on first use: a command that
    prints JSON only (``backup --json``) never imports rich.console (a tenth
    of start-up and some 6 MB)."""
    if name not in ("out", "err"):
        raise AttributeError(name)
    console = _CONSOLES.get(name)
    if console is None:
        from rich.console import Console
        from rich.text import Text

        class VisibleConsole(Console):
            """A console whose every string (a message, a table's cell) is
            printed with its control characters escaped."""

            def render_str(self, text: str, **kwargs: Any) -> Text:
                return super().render_str(visible(text), **kwargs)

        # no markup: paths, course names and messages print as they are ("mk[/]repo")
        console = VisibleConsole(
            stderr=name == "err", highlight=False, soft_wrap=True, markup=False)
        _CONSOLES[name] = console
    return console


def _out() -> Console:
    return __getattr__("out")


def _err() -> Console:
    return __getattr__("err")


def error(message: str, prefix: str = "error") -> None:
    """``coursevault: error: ...`` on stderr, one line: a message from a
    library may carry line breaks (libxml2's do)."""
    text = " ".join(part.strip() for part in message.strip().splitlines() if part.strip())
    _err().print(f"coursevault: {prefix}: {text}", markup=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=None, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def print_json_array(items: Iterable[Any]) -> None:
    """A JSON array written item by item, byte for byte what
    :func:`print_json` writes for the list: memory stays that of one item.

    A generator of ``items`` is closed here, before the command's repository
    closes: left to the garbage collector after a broken pipe (``| head``),
    its catalog cursor was closed on a closed database, and Python printed
    that traceback."""
    write = sys.stdout.write
    try:
        write("[")
        for n, item in enumerate(items):
            write((", " if n else "") + json.dumps(item, indent=None, sort_keys=False, default=str))
        write("]\n")
        sys.stdout.flush()
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def print_table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    """A rich table on a terminal; plain tab-separated lines when piped (nothing cut)."""
    if not _out().is_terminal:
        for row in [columns, *rows]:
            _out().print("\t".join("" if v is None else str(v) for v in row), markup=False)
        return
    from rich.table import Table  # only for a person: not part of every command's start-up

    table = Table(title=title, show_edge=False, header_style="bold")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    _out().print(table)


def print_pairs(pairs: dict[str, Any]) -> None:
    width = max((len(k) for k in pairs), default=0)
    for key, value in pairs.items():
        _out().print(f"{key.ljust(width)}  {value}")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@contextmanager
def progress_bar(
    description: str, *, enabled: bool, unit: str = "bytes"
) -> Iterator[Callable[[int, int], None] | None]:
    """A bar on stderr while the block runs, gone when it ends; yields the
    ``progress(done, total)`` callback the API takes (total 0: not known yet,
    the bar pulses) or None when progress is not wanted.  ``unit`` "bytes"
    shows sizes and speed, any other word counts (``3/120 packs``)."""
    if not enabled or not _err().is_terminal:
        yield None
        return
    # imported here: rich.progress is a fifth of rich's import time
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Speed(ProgressColumn):
        """In MiB/s, as every size the CLI prints (rich's own says MB/s)."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{human_bytes(speed)}/s" if speed else "?", style="progress.data.speed")

    class Count(ProgressColumn):
        """``3/120 packs`` once the total is known (check walks its snapshots
        before it counts packs: no "0/?" meanwhile)."""

        def render(self, task: Task) -> Text:
            known = task.total is not None
            return Text(f"{task.completed:.0f}/{task.total:.0f} {unit}" if known else "")

    counts: list[ProgressColumn] = (
        [DownloadColumn(binary_units=True), Speed()] if unit == "bytes" else [Count()]
    )
    progress = Progress(
        # the description names a course or an archive: its "[/]" is no markup
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        *counts,
        TimeRemainingColumn(),
        console=_err(),
        transient=True,
        # stdout may be a file while stderr is the terminal: leave it alone
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with progress:
        task = progress.add_task(visible(description), total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None)

        yield advance


@contextmanager
def progress_steps(description: str, *, enabled: bool) -> Iterator[Callable[[str], None] | None]:
    """A spinner on stderr naming the step under way (prune says what it is
    doing, not how far it is), gone when the block ends; None when progress
    is not wanted."""
    if not enabled or not _err().is_terminal:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        SpinnerColumn(),
        # the description names a course or an archive: its "[/]" is no markup
        TextColumn("{task.description}", markup=False),
        TimeElapsedColumn(),
        console=_err(),
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with progress:
        task = progress.add_task(visible(description), total=None)

        def step(message: str) -> None:
            progress.update(task, description=visible(f"{description}: {message}"))

        yield step
