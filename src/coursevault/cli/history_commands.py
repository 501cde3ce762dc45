"""Commands about history: log, diff, forget, prune."""

from __future__ import annotations

from typing import Annotated

import typer

from coursevault import api
from coursevault.cli import output
from coursevault.cli.base import (
    CacheOpt,
    CatalogOpt,
    JsonOpt,
    RepoOpt,
    WaitOpt,
    app,
    open_repo,
)


@app.command()
def log(
    course: Annotated[str, typer.Argument(help="Course key.")],
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A course's snapshots, newest first, with what each added against its parent."""
    with open_repo(repo, cache_dir, catalog) as r:
        entries = api.log(r, course)
        if json_out:
            output.print_json(list(entries))
            return
        for e in entries:
            changes = (
                f"records +{e['records_added']} ~{e['records_modified']} -{e['records_removed']}"
                + (f" >{e['records_moved']}" if e.get("records_moved") else "")
                if e["parent"]
                else "first snapshot"
            )
            output.out.print(
                f"{e['id'][:12]}  {e['time']}  new {output.human_bytes(e['new_bytes']):>10} "
                f"in {e['new_objects']:>6} objects  {changes}  {e['source']}",
                markup=False,
            )


@app.command("diff")
def diff_cmd(
    a: Annotated[str, typer.Argument(help="Old snapshot (selector).")],
    b: Annotated[str, typer.Argument(help="New snapshot (selector).")],
    path: Annotated[
        str | None, typer.Argument(help="Only members under this path (e.g. activities/forum_7).")
    ] = None,
    stat: Annotated[
        bool, typer.Option("--stat", help="Counts per activity and file area.")
    ] = False,
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What changed between two snapshots: members, records and fields."""
    with open_repo(repo, cache_dir, catalog) as r:
        sa, sb, d = api.diff(r, a, b, path)
    if json_out:
        output.print_json({"a": sa.id, "b": sb.id, **d.as_dict()})
        return
    if stat:
        groups = d.groups()
        output.print_table(
            ["group", "records +", "~", "-", ">", "members +", "~", "-"],
            [
                [
                    name,
                    g["added"],
                    g["modified"],
                    g["removed"],
                    g["moved"],
                    g["members_added"],
                    g["members_modified"],
                    g["members_removed"],
                ]
                for name, g in groups.items()
            ],
        )
        c = d.counts()
        output.out.print(
            f"{len(d.members)} members changed; records: {c['added']} added, "
            f"{c['modified']} modified, {c['removed']} removed, {c['moved']} moved",
            markup=False,
        )
        return
    for line in api.diff_lines(d):
        output.out.print(line, markup=False)


@app.command()
def forget(
    course: Annotated[str | None, typer.Argument(help="Course key (or --all).")] = None,
    all_courses: Annotated[bool, typer.Option("--all", help="Apply to every course.")] = False,
    keep_last: Annotated[int, typer.Option("--keep-last", help="Keep the N newest.")] = 0,
    keep_hourly: Annotated[
        int, typer.Option("--keep-hourly", help="Newest of each of the last N hours.")
    ] = 0,
    keep_daily: Annotated[
        int, typer.Option("--keep-daily", help="Newest of each of the last N days.")
    ] = 0,
    keep_weekly: Annotated[
        int, typer.Option("--keep-weekly", help="Newest of each of the last N ISO weeks.")
    ] = 0,
    keep_monthly: Annotated[
        int, typer.Option("--keep-monthly", help="Newest of each of the last N months.")
    ] = 0,
    keep_yearly: Annotated[
        int, typer.Option("--keep-yearly", help="Newest of each of the last N years.")
    ] = 0,
    snapshot: Annotated[
        list[str] | None,
        typer.Option(
            "--snapshot",
            help="Remove this snapshot (a selector; repeatable) instead of applying a policy, "
            "e.g. one `check` reports as needing damaged objects.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be removed.")
    ] = False,
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Remove snapshots a retention policy does not keep (run prune to free space)."""
    policy = api.Policy(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)
    request = api.ForgetRequest(course, all_courses, policy, snapshot or [])
    counts = {"keep": 0, "remove": 0}
    with open_repo(repo, cache_dir, catalog, wait=wait) as r:
        rows = api.iter_forget_requested(r, request, dry_run=dry_run)
        try:
            if json_out:  # row by row, course by course: a site's are millions
                output.print_json_array(rows)
                return
            for x in rows:
                counts[x["action"]] += 1
                why = f" ({', '.join(x['reasons'])})" if x["reasons"] else ""
                verb = (
                    "keep  " if x["action"] == "keep" else ("would remove" if dry_run else "remove")
                )
                output.out.print(
                    f"{verb} {x['id'][:12]}  {x['course']}  {x['time']}{why}", markup=False
                )
        except (BrokenPipeError, SystemExit) as exc:
            # `| head`: the policy is carried out all the same.  rich's console
            # meets the broken pipe first and exits; app.main says nothing of it
            if isinstance(exc, SystemExit) and not isinstance(exc.__context__, BrokenPipeError):
                raise
            for _ in rows:
                pass
            raise
    output.out.print(
        f"{counts['remove']} snapshots {'would be ' if dry_run else ''}removed, "
        f"{counts['keep']} kept" + ("" if dry_run else "; run `coursevault prune` to free space"),
        markup=False,
    )


@app.command()
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be freed.")
    ] = False,
    merge_min: Annotated[
        int,
        typer.Option(
            "--merge-min",
            help="Merge small packs (under a quarter of the pack size) once there are this "
            "many; 0: never.",
        ),
    ] = api.MERGE_MIN,
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Delete objects no snapshot reaches, repack mostly-garbage packs and merge small
    ones (exclusive lock)."""
    with (
        open_repo(repo, cache_dir, catalog, wait=wait) as r,
        output.progress_steps("prune", enabled=not json_out) as step,
    ):
        report = api.prune(r, dry_run=dry_run, progress=step, merge_min=merge_min)
    if json_out:
        output.print_json(report.as_dict())
        return
    freed = report.bytes_freed
    if freed >= 0:
        amount = f"{'would free' if dry_run else 'freed'} {output.human_bytes(freed)}"
    else:  # a rewritten index can come out a little larger than the files it replaces
        amount = f"{'would grow by' if dry_run else 'grew by'} {output.human_bytes(-freed)}"
    output.out.print(
        f"{amount}: "
        f"{report.packs_deleted} of {report.packs_before} packs deleted, {report.packs_repacked} repacked "
        f"and {report.packs_merged} merged into {report.packs_written}; "
        f"{report.reachable_objects} objects kept for {report.snapshots} snapshots",
        markup=False,
    )
