"""``restore``: a snapshot straight into a Moodle database."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

import typer

from coursevault import api
from coursevault.cli import output
from coursevault.cli.base import (
    ID_MAX,
    CacheOpt,
    CatalogOpt,
    JsonOpt,
    NoLockOpt,
    RepoOpt,
    WaitOpt,
    app,
    open_repo,
)


@app.command()
def restore(
    snapshot: Annotated[str, typer.Argument(help="Snapshot id (prefix) or selector "
                                            "(COURSE, COURSE@TIME, COURSE@~N...).")],
    db: Annotated[str, typer.Option("--db", help="The Moodle database: postgresql://..., "
                                    "mysql+pymysql://... or sqlite:///path.")],
    dataroot: Annotated[str, typer.Option("--dataroot", help="The site's data folder "
                                          "(holding filedir/).")],
    new_course: Annotated[bool, typer.Option(
        "--new-course", help="Restore as a new course (the default).")] = False,
    into: Annotated[int | None, typer.Option(
        "--into", help="Restore into this existing course (with --merge or --replace).",
        max=ID_MAX)
    ] = None,
    merge: Annotated[bool, typer.Option(
        "--merge", help="With --into: add the backup's sections and activities to the "
        "course.")] = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="With --into: delete the course's content (activities, blocks, "
        "sections, gradebook, groups, enrolments, questions, files...; never users), "
        "then restore the backup into the course, in the same transaction.")] = False,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Restore only this activity or section folder of the backup "
        "(activities/forum_12, sections/section_3; repeat).")] = None,
    category: Annotated[int | None, typer.Option(
        "--category", help="Category of the new course (default: the backup's, if this "
        "site has it, else the first top-level one).", max=ID_MAX)] = None,
    shortname: Annotated[str | None, typer.Option("--shortname", help="Short name of the "
                                                  "new course (made unique as Moodle does).")
                         ] = None,
    fullname: Annotated[str | None, typer.Option("--fullname", help="Full name of the new "
                                                 "course.")] = None,
    start_date: Annotated[str | None, typer.Option(
        "--start-date", help="New course start date (YYYY-MM-DD, UTC; or epoch seconds, 9 "
        "or 10 digits): every date of the course moves by the same amount.")] = None,
    no_users: Annotated[bool, typer.Option("--no-users", help="Leave user data out.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Report what would be created and matched; write nothing.")] = False,
    prefix: Annotated[str, typer.Option("--prefix", help="Table prefix.")] = "mdl_",
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
    wait: WaitOpt = 0.0,
    no_lock: NoLockOpt = False,
) -> None:
    """Restore a snapshot straight into a Moodle database, all or nothing.

    Every row is written in one transaction and file contents reach the
    file store only with it: on any error the site is left as it was
    (exit 13 for the database, 2 for the backup's content or a wrong
    combination of options).  --into ID --replace deletes the course's
    content in that same transaction (--dry-run lists what it would
    delete).
    """
    _check_target(new_course, into, merge, replace, bool(only))
    request = api.RestoreRequest(
        selector=snapshot, db_url=db, dataroot=dataroot, category=category,
        shortname=shortname, fullname=fullname, users=not no_users, dry_run=dry_run,
        prefix=prefix, into=into, replace=replace, only=tuple(only or ()),
        start_date=_date(start_date) if start_date is not None else None)
    # from the commit until the report is out, Ctrl-C is noted, not raised:
    # exit 130 would tell a user the course was not restored when it was
    window = api.CommitWindow()
    try:
        with open_repo(repo, cache_dir, catalog, wait=wait, no_lock=no_lock) as r:
            report = api.restore_to_database(r, request, window)
        if json_out:
            output.print_json(report)
        else:
            _print_report(report)
        if window.interrupted and not any(window.interrupted in w for w in report["warnings"]):
            output.error(f"{window.interrupted} came after the restore committed: the course "
                         "is restored", "warning")
    finally:
        window.close()


# epoch seconds of fewer digits are a time of 1970 to 1973: a number that
# short is a date written without dashes (20270201, 2027), never a start date
FEWEST_EPOCH_DIGITS = 9


def _date(text: str) -> int:
    """YYYY-MM-DD (UTC midnight), an ISO 8601 time, or epoch seconds (9 or
    more ASCII digits).  ``20270201`` was taken for epoch seconds, and moved
    every date of the course to 1970, silently."""
    from datetime import datetime

    if text.isascii() and text.isdigit():
        if len(text.lstrip("0")) < FEWEST_EPOCH_DIGITS:
            raise api.UsageError(
                f"--start-date {text!r}: as epoch seconds that is "
                f"{datetime.fromtimestamp(int(text), UTC):%Y-%m-%d %H:%M} UTC; write the date "
                "as YYYY-MM-DD (epoch seconds have 9 or 10 digits)")
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise api.UsageError(f"--start-date {text!r} is not a date (YYYY-MM-DD)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def _check_target(new_course: bool, into: int | None, merge: bool, replace: bool,
                  only: bool) -> None:
    if into is None:
        if merge or replace:
            raise api.UsageError("--merge and --replace go with --into COURSEID")
        return
    if new_course:
        raise api.UsageError("--new-course and --into exclude each other")
    if merge and replace:
        raise api.UsageError("--merge and --replace exclude each other: add to the course, "
                             "or delete its content first")
    if replace and only:
        raise api.UsageError("--replace restores the whole backup: --only goes with --merge")
    if not merge and not replace:
        raise api.UsageError("--into needs --merge (add to the course) or --replace "
                             "(delete its content first)")


def _print_report(report: dict[str, Any]) -> None:
    for warning in report["warnings"]:
        output.error(warning, "warning")
    verb = "would restore" if report["dry_run"] else "restored"
    users = report.get("users") or {}
    course = (f"course {report['courseid']} ({report['shortname']})"
              if not report["dry_run"] else "a new course")
    if report.get("into") and not report["dry_run"]:
        how = "replaced" if report.get("replaced") else "merged"
        course = f"course {report['courseid']} ({report['shortname']}), {how}"
    elif report.get("replaced"):
        course = f"course {report['courseid']}, its content replaced"
    elif report.get("into"):  # a dry run into an existing course
        course = f"course {report['courseid']}, merged"
    deleted = report.get("deleted") or {}
    if report.get("replaced"):
        output.out.print(
            f"{'would delete' if report['dry_run'] else 'deleted'} {sum(deleted.values())} "
            f"rows of the course's content in {len(deleted)} tables", markup=False)
        if report["dry_run"]:
            for table, count in sorted(deleted.items()):
                output.out.print(f"  delete: {count} x {table}", markup=False)
    output.out.print(
        f"{verb} snapshot {report['snapshot'][:12]} as {course}: "
        f"{report['activities']} activities, {sum(report['rows'].values())} rows, "
        f"users {users.get('matched', 0)} matched / {users.get('created', 0)} created, "
        f"{report['files'].get('restored', 0)} files "
        f"({report['files'].get('contents', 0)} new contents) in {report['seconds']:.2f} s",
        markup=False)
    for left in report["left_out"]:
        output.out.print(f"left out: {left}", markup=False)
    for what, count in sorted(report["unmapped"].items()):
        output.out.print(f"unmapped: {count} x {what}", markup=False)
