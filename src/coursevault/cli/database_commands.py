"""Commands of the database door: ``backup`` a Moodle site's courses."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any

import typer

from coursevault import api
from coursevault.cli import output
from coursevault.cli.base import (
    ID_MAX,
    CacheOpt,
    CatalogOpt,
    JsonOpt,
    RepoOpt,
    WaitOpt,
    app,
    open_repo,
)


@app.command()
def backup(
    db: Annotated[str, typer.Option("--db", help="The Moodle database: postgresql://..., "
                                    "mysql+pymysql://... or sqlite:///path.")],
    dataroot: Annotated[str, typer.Option("--dataroot", help="The site's data folder "
                                          "(holding filedir/).")],
    course: Annotated[list[int] | None, typer.Option(
        "--course", help="Course id (repeat).", max=ID_MAX)] = None,
    all_courses: Annotated[bool, typer.Option("--all", help="Every course of the site.")] = False,
    category: Annotated[int | None, typer.Option(
        "--category", help="With --all: only this category and those below it.", max=ID_MAX)] = None,
    exclude: Annotated[list[int] | None, typer.Option(
        "--exclude", help="With --all: leave this course out (repeat).", max=ID_MAX)] = None,
    no_users: Annotated[bool, typer.Option("--no-users", help="Leave user data out.")] = False,
    no_files: Annotated[bool, typer.Option("--no-files", help="Leave file contents out.")] = False,
    anonymize: Annotated[bool, typer.Option(
        "--anonymize", help="Users anonymised as Moodle's backup does (needs users).")] = False,
    skip_unmodified: Annotated[bool, typer.Option(
        "--skip-unmodified",
        help="Skip a course with no logged change since its last snapshot (Moodle's rule).")
    ] = False,
    site: Annotated[str | None, typer.Option(
        "--site", help="Site part of course keys (default: as Moodle's backups name it).")
    ] = None,
    prefix: Annotated[str, typer.Option("--prefix", help="Table prefix.")] = "mdl_",
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Courses backed up at once.")] = 1,
    shard: Annotated[str | None, typer.Option(
        "--shard", metavar="K/N",
        help="Only the courses whose id is K-1 modulo N: N workers, one shard each.")] = None,
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Back courses up straight from a Moodle database, one snapshot each.

    Each course is read in one consistent read transaction and stored all or
    nothing; the database is never written.  A course that fails is reported
    and the others go on; the command then exits 2.  A site that cannot be
    read (unreachable, not Moodle 4.5, no file store) exits 13.
    """
    settings: dict[str, bool] = {}
    if no_users:
        settings["users"] = False
    if no_files:
        settings["files"] = False
    if anonymize:
        if no_users:
            raise api.UsageError("--anonymize anonymises the users: it cannot go with --no-users")
        settings["anonymize"] = True
    request = api.BackupRequest(
        db_url=db, dataroot=dataroot, courses=list(course or []), all_courses=all_courses,
        category=category, exclude=list(exclude or []), settings=settings, site=site,
        prefix=prefix, skip_unmodified=skip_unmodified, shard=_shard(shard),
    )
    with open_repo(repo, cache_dir, catalog, sync=False, wait=wait) as r:
        outcomes = []
        gone: BaseException | None = None  # stdout's reader went away (`| head -1`)
        try:
            bars = _bar(json_out) if jobs == 1 else None
            for outcome in api.backup(r, request, progress=bars, jobs=jobs):
                outcomes.append(outcome.as_dict())
                if not json_out and gone is None:
                    try:
                        _print_outcome(outcome)
                    except (BrokenPipeError, SystemExit) as exc:
                        # the night's backups go on all the same; rich's
                        # console meets the broken pipe first and exits
                        if isinstance(exc, SystemExit) and not isinstance(
                            exc.__context__, BrokenPipeError
                        ):
                            raise
                        gone = exc
        finally:
            if json_out:
                output.print_json(outcomes)
        if gone is not None:
            raise gone  # app.main: a reader that went away is no error
        if not outcomes and not json_out:
            output.out.print("no course to back up (none matched, or --shard left none)")


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise api.UsageError(f"--shard {text!r}: give K/N with 1 <= K <= N, e.g. 2/4")
    return int(k), int(n)


def _bar(json_out: bool) -> Callable[[int, str], AbstractContextManager[Any]]:
    def bar(courseid: int, shortname: str) -> AbstractContextManager[Any]:
        return output.progress_bar(f"backup course {courseid} {shortname}",
                                   enabled=not json_out, unit="tasks")

    return bar


def _print_outcome(outcome: api.CourseBackup) -> None:
    for warning in outcome.all_warnings:
        output.error(f"course {outcome.courseid}: {warning}", "warning")
    if outcome.outcome == "failed":
        output.error(f"course {outcome.courseid}: {outcome.error}")
        return
    if outcome.outcome == "skipped":
        output.out.print(f"course {outcome.courseid} ({outcome.shortname}): unmodified since "
                         "its last snapshot, skipped", markup=False)
        return
    result = outcome.result
    assert result is not None
    output.out.print(
        f"snapshot {result.snapshot[:12]}  course {result.course} ({outcome.shortname})  "
        f"{result.time}  {result.members} members, {result.elements} elements, "
        f"{output.human_bytes(result.bytes_read)} in {outcome.seconds:.2f} s; "
        f"new {output.human_bytes(result.new_bytes)} in {result.new_objects} objects",
        markup=False,
    )


@app.command()
def runs(
    course: Annotated[str | None, typer.Argument(help="Only this course key.")] = None,
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Backup runs logged in the catalog: course, snapshot, start, duration, new bytes, outcome."""
    with open_repo(repo, cache_dir, catalog) as r:
        rows = api.backup_runs(r, course)
    if json_out:
        output.print_json(rows)
        return
    table = []
    for row in rows:
        table.append([row["time"], row["course"], row["source"], row["outcome"],
                      f"{row['seconds']:.2f}", output.human_bytes(row["new_bytes"]),
                      _snapshot_or_error(row)])
    columns = ["started", "course", "source", "outcome", "seconds", "new bytes", "snapshot"]
    output.print_table(columns, table)


def _snapshot_or_error(row: dict[str, Any]) -> str:
    """A run's snapshot, with its count of warnings if it had any, or its error."""
    if not row["snapshot"]:
        return str(row["error"])
    warnings = str(row["error"]).partition(";")[0]
    return f"{row['snapshot'][:12]} ({warnings})" if warnings else str(row["snapshot"][:12])
