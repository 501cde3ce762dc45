"""The ``coursevault`` command: typer commands that parse, call coursevault.api, print.

Exit codes: 0 success; 1 failure (including corruption found by ``check``);
2 bad input or usage; 10 no repository; 11 repository locked.  Errors are one
line on stderr; ``--debug`` (or COURSEVAULT_DEBUG=1) shows the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer

from coursevault import __version__, api
from coursevault.cli import output
from coursevault.diff.treediff import iter_lines
from coursevault.errors import EXIT_BAD_INPUT, EXIT_FAILURE, CoursevaultError, UsageError
from coursevault.snapshot.retention import Policy
from coursevault.store.repository import Repository

app = typer.Typer(
    name="coursevault",
    help="Incremental, deduplicated history of Moodle course backups.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
index_app = typer.Typer(
    help="Maintain the local catalog of the repository index.", no_args_is_help=True
)
app.add_typer(index_app, name="index")

RepoOpt = Annotated[
    str,
    typer.Option(
        "--repo", "-r", envvar="COURSEVAULT_REPO", help="Repository folder [env COURSEVAULT_REPO]."
    ),
]
CacheOpt = Annotated[
    str | None,
    typer.Option(
        "--cache-dir",
        envvar="COURSEVAULT_CACHE",
        help="Folder for local caches (catalog) [env COURSEVAULT_CACHE; default ~/.cache/coursevault].",
    ),
]
CatalogOpt = Annotated[
    str | None,
    typer.Option(
        "--catalog",
        envvar="COURSEVAULT_CATALOG",
        help="SQLAlchemy URL of the catalog database instead of the local SQLite cache.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _cache_dir(cache_dir: str | None) -> str | None:
    if cache_dir:
        return cache_dir
    xdg = os.environ.get("XDG_CACHE_HOME")
    return os.path.join(xdg, "coursevault") if xdg else None


def _open(repo: str, cache_dir: str | None, catalog: str | None) -> Repository:
    return api.open_repository(repo, cache_dir=_cache_dir(cache_dir), catalog_url=catalog)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Incremental, deduplicated history of Moodle course backups."""


@app.command()
def version() -> None:
    """Print the version."""
    output.out.print(f"coursevault {__version__}")


@app.command()
def init(
    path: Annotated[str | None, typer.Argument(help="Folder for the new repository.")] = None,
    repo: RepoOpt = "",
    pack_size: Annotated[int, typer.Option(help="Target pack file size in MiB.")] = 16,
    json_out: JsonOpt = False,
) -> None:
    """Create a new, empty repository."""
    location = path or repo
    config = api.init_repository(location, pack_size=pack_size * 1024 * 1024)
    if json_out:
        output.print_json({"location": os.path.abspath(location), **config})
    else:
        output.out.print(f"created repository {config['id']} at {os.path.abspath(location)}")


@app.command()
def stats(
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show what the repository holds and how much space it takes."""
    with _open(repo, cache_dir, catalog) as r:
        data = api.repository_stats(r)
    if json_out:
        output.print_json(data)
        return
    shown = dict(data)
    shown["pack_bytes"] = f"{data['pack_bytes']} ({output.human_bytes(data['pack_bytes'])})"
    shown["index_bytes"] = f"{data['index_bytes']} ({output.human_bytes(data['index_bytes'])})"
    output.print_pairs(shown)


@app.command()
def check(
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    read_data: Annotated[
        bool, typer.Option("--read-data", help="Also read every pack and verify every object.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Verify that every snapshot is complete (and, with --read-data, every byte)."""
    with _open(repo, cache_dir, catalog) as r:
        report = api.check(r, read_data=read_data)
    summary = {
        "ok": report.ok,
        "snapshots": report.snapshots,
        "index_files": report.index_files,
        "packs": report.packs,
        "objects": report.objects,
        "reachable_objects": report.reachable,
        "bytes_read": report.bytes_read,
        "errors": len(report.errors),
        "warnings": len(report.problems) - len(report.errors),
        "problems": [{"severity": p.severity, "message": p.message} for p in report.problems],
    }
    if json_out:
        output.print_json(summary)
    else:
        for p in report.problems:
            output.err.print(f"{p.severity}: {p.message}", markup=False)
        verdict = "no errors" if report.ok else f"{len(report.errors)} errors"
        output.out.print(
            f"checked {report.snapshots} snapshots, {report.index_files} index files, "
            f"{report.packs} packs, {report.objects} objects"
            + (f", read {output.human_bytes(report.bytes_read)}" if read_data else "")
            + f": {verdict}, {summary['warnings']} warnings"
        )
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)


@index_app.command("rebuild")
def index_rebuild(
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Recreate the catalog from the repository's index and snapshot files."""
    backend = api.backend_for(repo)
    with Repository.open(
        backend, cache_dir=_cache_dir(cache_dir), catalog_url=catalog, sync=False
    ) as opened:
        counts = api.rebuild_index(opened)
    if json_out:
        output.print_json(counts)
    else:
        output.out.print(
            f"catalog rebuilt: {counts['objects']} objects from {counts['index_files']} index files, "
            f"{counts['snapshots']} snapshots"
        )


@app.command()
def unlock(
    repo: RepoOpt = "",
    remove_all: Annotated[
        bool, typer.Option("--remove-all", help="Remove all locks, not only stale ones.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Remove stale locks left by processes that died."""
    removed = api.unlock(repo, remove_all=remove_all)
    if json_out:
        output.print_json([{"lock": lk.key, "holder": lk.describe()} for lk in removed])
    elif removed:
        for lk in removed:
            output.out.print(f"removed {lk.describe()}")
    else:
        output.out.print("no stale locks")


@app.command()
def ingest(
    archives: Annotated[list[str], typer.Argument(help="Moodle backup files (.mbz, tgz or zip).")],
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    course: Annotated[
        str | None, typer.Option("--course", help="Course key (default: site hash + course id).")
    ] = None,
    when: Annotated[
        str | None, typer.Option("--time", help="Snapshot time, ISO 8601 (default: backup_date).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Store .mbz archives as deduplicated snapshots (one per archive, all or nothing each)."""
    with _open(repo, cache_dir, catalog) as r:
        for path in archives:
            with output.byte_progress(
                f"ingest {os.path.basename(path)}", None, not json_out
            ) as bar:
                result = api.ingest(r, path, course=course, when=when, progress=bar)
            if json_out:
                output.print_json(result.as_dict())
                continue
            output.out.print(
                f"snapshot {result.snapshot[:12]}  course {result.course}  {result.time}  "
                f"{result.members} members, {result.elements} elements, "
                f"read {output.human_bytes(result.bytes_read)}, "
                f"new {output.human_bytes(result.new_bytes)} in {result.new_objects} objects "
                f"({output.human_bytes(result.stored_bytes)} stored)",
                markup=False,
            )
            for raw in result.raw_xml:
                output.err.print(f"  kept raw: {raw['member']}: {raw['reason']}", markup=False)


@app.command()
def export(
    snapshot: Annotated[
        str, typer.Argument(help="Snapshot: id prefix, COURSE@latest, COURSE@~N, COURSE@<time>.")
    ],
    out: Annotated[str, typer.Option("--output", "-o", help="Archive file to write.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="tgz or zip (default: as ingested).")
    ] = None,
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Rebuild a snapshot as an .mbz archive that Moodle restores."""
    with _open(repo, cache_dir, catalog) as r:
        result = api.export(r, snapshot, out, fmt=fmt)
    if json_out:
        output.print_json(result.as_dict())
    else:
        output.out.print(
            f"wrote {result.path} ({result.format}, {result.members} members, "
            f"{output.human_bytes(result.bytes)} of content) from snapshot {result.snapshot[:12]}",
            markup=False,
        )


@app.command("ls")
def ls_cmd(
    snapshot: Annotated[str, typer.Argument(help="Snapshot selector.")],
    path: Annotated[
        str | None, typer.Argument(help="An XML member: list its element tree.")
    ] = None,
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List a snapshot's members, or the element records of one XML member."""
    with _open(repo, cache_dir, catalog) as r:
        if path is None:
            _snap, tree = api.archive_tree(r, snapshot)
            rows = [
                {
                    "name": m.name,
                    "kind": m.kind,
                    "size": m.size,
                    "mtime": m.mtime,
                    "content": m.content_kind,
                }
                for m in tree.members
            ]
            if json_out:
                output.print_json(rows)
            else:
                for row in rows:
                    output.out.print(
                        f"{row['kind'][0]} {row['size']:>10} {row['content']:<13} {row['name']}",
                        markup=False,
                    )
            return
        items = api.element_outline(r, snapshot, path)
        if json_out:
            output.print_json(
                [
                    {
                        "depth": d,
                        "tag": el.tag,
                        "attrs": el.attrs,
                        "fields": n,
                        "id": el.oid.hex() if el.oid else None,
                    }
                    for d, el, n in items
                ]
            )
        else:
            for depth, el, n in items:
                output.out.print(f"{'  ' * depth}{el.label()}  ({n} fields)", markup=False)


@app.command()
def cat(
    snapshot: Annotated[str, typer.Argument(help="Snapshot selector.")],
    path: Annotated[str, typer.Argument(help="Member path, or member:/element/address[@id=N].")],
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """Print a member's bytes, or one element of an XML member."""
    with _open(repo, cache_dir, catalog) as r:
        api.cat(r, snapshot, path, sys.stdout.buffer.write)
    sys.stdout.buffer.flush()


@app.command()
def snapshots(
    course: Annotated[str | None, typer.Option("--course", help="Only this course.")] = None,
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List snapshots (oldest first)."""
    with _open(repo, cache_dir, catalog) as r:
        rows = api.list_snapshots(r, course)
    if json_out:
        output.print_json(rows)
        return
    output.print_table(
        ["id", "course", "time", "source", "new bytes", "new objects"],
        [
            [
                row["id"][:12],
                row["course"],
                row["time"],
                row["source"].get("file", ""),
                output.human_bytes(row["new_bytes"]),
                row["new_objects"],
            ]
            for row in rows
        ],
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
    with _open(repo, cache_dir, catalog) as r:
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
    with _open(repo, cache_dir, catalog) as r:
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
    for line in iter_lines(d):
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
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be removed.")
    ] = False,
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove snapshots a retention policy does not keep (run prune to free space)."""
    if (course is None) == (not all_courses):
        raise UsageError("give a COURSE or --all (not both)")
    policy = Policy(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)
    with _open(repo, cache_dir, catalog) as r:
        rows = api.forget(r, policy, course=course, dry_run=dry_run)
    if json_out:
        output.print_json(rows)
        return
    removed = [x for x in rows if x["action"] == "remove"]
    for x in rows:
        why = f" ({', '.join(x['reasons'])})" if x["reasons"] else ""
        verb = "keep  " if x["action"] == "keep" else ("would remove" if dry_run else "remove")
        output.out.print(f"{verb} {x['id'][:12]}  {x['course']}  {x['time']}{why}", markup=False)
    output.out.print(
        f"{len(removed)} snapshots {'would be ' if dry_run else ''}removed, "
        f"{len(rows) - len(removed)} kept"
        + ("" if dry_run else "; run `coursevault prune` to free space"),
        markup=False,
    )


@app.command()
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be freed.")
    ] = False,
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete objects no snapshot reaches and repack mostly-garbage packs (exclusive lock)."""
    with _open(repo, cache_dir, catalog) as r:
        report = api.prune(
            r,
            dry_run=dry_run,
            progress=None if json_out else lambda m: output.err.print(m, markup=False),
        )
    if json_out:
        output.print_json(report.as_dict())
        return
    output.out.print(
        f"{'would free' if dry_run else 'freed'} {output.human_bytes(report.bytes_freed)}: "
        f"{report.packs_deleted} of {report.packs_before} packs deleted, {report.packs_repacked} repacked "
        f"into {report.packs_written}; {report.reachable_objects} objects kept for {report.snapshots} snapshots",
        markup=False,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn every error into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("COURSEVAULT_DEBUG") == "1"
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="coursevault", standalone_mode=False)
        if isinstance(rv, int):  # click returns a typer.Exit's code instead of raising it
            return rv
    except typer.Exit as exc:
        return int(exc.exit_code)
    except BrokenPipeError:
        # the reader went away (`coursevault diff ... | head`): stop quietly, like cat
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (typer.Abort, KeyboardInterrupt):
        output.err.print("coursevault: interrupted")
        return 130
    except CoursevaultError as exc:
        if debug:
            traceback.print_exc()
        output.err.print(f"coursevault: error: {exc}", markup=False)
        return exc.exit_code
    except Exception as exc:
        # typer vendors click; its usage errors all carry format_message()
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            message = exc.format_message()
            if message:  # empty for "no arguments: help was shown"
                output.err.print(f"coursevault: error: {message}", markup=False)
            return EXIT_BAD_INPUT
        if debug:
            traceback.print_exc()
        output.err.print(
            f"coursevault: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
            markup=False,
        )
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
