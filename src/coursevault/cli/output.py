"""Printing for the CLI: JSON for scripts, rich tables and progress for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def error(message: str, prefix: str = "error") -> None:
    """``coursevault: error: ...`` on stderr, one line: a message from a
    library may carry line breaks (libxml2's do)."""
    text = " ".join(part.strip() for part in message.strip().splitlines() if part.strip())
    err.print(f"coursevault: {prefix}: {text}", markup=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=None, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def print_table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    """A rich table on a terminal; plain tab-separated lines when piped (nothing cut)."""
    if not out.is_terminal:
        for row in [columns, *rows]:
            out.print("\t".join("" if v is None else str(v) for v in row), markup=False)
        return
    table = Table(title=title, show_edge=False, header_style="bold")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)


def print_pairs(pairs: dict[str, Any]) -> None:
    width = max((len(k) for k in pairs), default=0)
    for key, value in pairs.items():
        out.print(f"{key.ljust(width)}  {value}")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@contextmanager
def byte_progress(description: str, total: int | None, enabled: bool) -> Iterator[Any]:
    """A progress bar on stderr (only on a terminal, never in --json mode)."""
    if not enabled or not err.is_terminal:
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    with progress:
        task = progress.add_task(description, total=total)

        def advance(done: int, new_total: int | None = None) -> None:
            progress.update(task, completed=done, total=new_total or total)

        yield advance
