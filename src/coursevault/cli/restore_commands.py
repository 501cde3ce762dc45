"""``restore``: a snapshot straight into a Moodle database."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from coursevault import api
from coursevault.cli import output
from coursevault.cli.base import CacheOpt, CatalogOpt, JsonOpt, RepoOpt, WaitOpt, app, open_repo


@app.command()
def restore(
    snapshot: Annotated[str, typer.Argument(help="Snapshot id (prefix) or selector "
                                            "(COURSE@TIME, COURSE~N...).")],
    db: Annotated[str, typer.Option("--db", help="The Moodle database: postgresql://..., "
                                    "mysql+pymysql://... or sqlite:///path.")],
    dataroot: Annotated[str, typer.Option("--dataroot", help="The site's data folder "
                                          "(holding filedir/).")],
    new_course: Annotated[bool, typer.Option(
        "--new-course", help="Restore as a new course (the only mode so far).")] = True,
    category: Annotated[int | None, typer.Option(
        "--category", help="Category of the new course (default: the backup's, if this "
        "site has it, else the first top-level one).")] = None,
    shortname: Annotated[str | None, typer.Option("--shortname", help="Short name of the "
                                                  "new course (made unique as Moodle does).")
                         ] = None,
    fullname: Annotated[str | None, typer.Option("--fullname", help="Full name of the new "
                                                 "course.")] = None,
    no_users: Annotated[bool, typer.Option("--no-users", help="Leave user data out.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Report what would be created and matched; write nothing.")] = False,
    prefix: Annotated[str, typer.Option("--prefix", help="Table prefix.")] = "mdl_",
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Restore a snapshot straight into a Moodle database, all or nothing.

    Every row is written in one transaction and file contents reach the
    file store only with it: on any error the site is left as it was
    (exit 13 for the database, 2 for the backup's content).
    """
    if not new_course:
        raise api.UsageError("only --new-course restores exist so far")
    request = api.RestoreRequest(
        selector=snapshot, db_url=db, dataroot=dataroot, category=category,
        shortname=shortname, fullname=fullname, users=not no_users, dry_run=dry_run,
        prefix=prefix)
    with open_repo(repo, cache_dir, catalog, wait=wait) as r:
        report = api.restore_to_database(r, request)
    if json_out:
        output.print_json(report)
        return
    _print_report(report)


def _print_report(report: dict[str, Any]) -> None:
    for warning in report["warnings"]:
        output.error(warning, "warning")
    verb = "would restore" if report["dry_run"] else "restored"
    users = report.get("users") or {}
    course = (f"course {report['courseid']} ({report['shortname']})"
              if not report["dry_run"] else "a new course")
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
