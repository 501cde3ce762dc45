"""Commands on Moodle databases: demo-site."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from coursevault import api
from coursevault.cli import output
from coursevault.cli.base import JsonOpt, app


@app.command("demo-site")
def demo_site(
    db: Annotated[
        str,
        typer.Option(
            "--db",
            help="SQLAlchemy URL of an empty database (sqlite:///site.db, postgresql+psycopg://..., mysql+pymysql://...).",
        ),
    ] = "",
    dataroot: Annotated[
        str,
        typer.Option(
            "--dataroot", help="Moodle data folder: file contents go to DATAROOT/filedir."
        ),
    ] = "",
    size: Annotated[
        str | None,
        typer.Option(
            "--size", help="Course size as Moodle's course generator: S or M.  [default: S]"
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Same seed, same site, row for row.  [default: 1]"),
    ] = None,
    courses: Annotated[
        int | None, typer.Option("--courses", help="How many courses of that size.  [default: 1]")
    ] = None,
    churn: Annotated[
        bool,
        typer.Option(
            "--churn", help="Apply one night of activity to an existing demo site instead."
        ),
    ] = False,
    at: Annotated[
        str | None,
        typer.Option(
            "--time",
            help="With --churn: when the night happens, ISO 8601 (default now; "
            "give it for a night identical row for row).",
        ),
    ] = None,
    prefix: Annotated[str, typer.Option("--prefix", help="Moodle's table prefix.")] = "mdl_",
    json_out: JsonOpt = False,
) -> None:
    """Create a Moodle 4.5 demo site with generated courses (or, with --churn, a night of activity)."""
    report = api.demo_site(
        db, dataroot, size=size, seed=seed, courses=courses, churn=churn, at=at, prefix=prefix
    )
    if json_out:
        output.print_json(dataclasses.asdict(report))
        return
    if churn:
        changed = ", ".join(f"{table} {n}" for table, n in report.changes.items())
        output.out.print(
            f"night {report.night} on {report.database}: {len(report.courses)} course(s); "
            f"rows added or changed: {changed} ({report.seconds:.1f} s)"
        )
        return
    output.out.print(
        f"created demo site {report.database} (size {report.size}, seed {report.seed}): "
        f"course ids {', '.join(map(str, report.courses))}, {report.users} users, "
        f"{report.course_modules} activities, {report.files_written} new files in the file store "
        f"({output.human_bytes(report.bytes_written)}) in {report.seconds:.1f} s"
    )
