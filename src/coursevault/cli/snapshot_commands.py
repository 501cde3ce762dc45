"""Commands that put snapshots in and take them out: ingest, export, ls, cat, snapshots."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any, BinaryIO

import typer

from coursevault import api
from coursevault.cli import output
from coursevault.cli.base import (
    CacheOpt,
    CatalogOpt,
    JsonOpt,
    NoLockOpt,
    RepoOpt,
    WaitOpt,
    app,
    open_repo,
)
from coursevault.errors import UsageError


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
    wait: WaitOpt = 0.0,
) -> None:
    """Store .mbz archives as deduplicated snapshots (one per archive, all or nothing each).

    An archive refused as bad input is reported and the others go on (a
    nightly run over many courses must not lose them all to one broken
    file); the command then exits 2.  Anything else stops it.
    """
    # each ingest syncs the catalog under its lock
    with open_repo(repo, cache_dir, catalog, sync=False, wait=wait) as r:
        stored = api.ingest_archives(
            r, archives, course=course, when=when, progress=_progress_bar(json_out)
        )
        for path, result in stored:
            if isinstance(result, api.ArchiveError):
                output.error(str(result))
                continue
            _print_ingested(path, result, json_out)


def _progress_bar(json_out: bool) -> Callable[[str], AbstractContextManager[Any]]:
    def bar(path: str) -> AbstractContextManager[Any]:
        return output.progress_bar(f"ingest {os.path.basename(path)}", enabled=not json_out)

    return bar


def _print_ingested(path: str, result: api.IngestResult, json_out: bool) -> None:
    for misnamed in result.misnamed_files:
        output.error(
            f"{path}: {misnamed['member']}: content does not hash to its name "
            f"(SHA-1 {misnamed['sha1']}); Moodle's restore looks the file up by it",
            "warning",
        )
    if json_out:
        output.print_json(result.as_dict())
        return
    output.out.print(
        f"snapshot {result.snapshot[:12]}  course {result.course}  {result.time}  "
        f"{result.members} members, {result.elements} elements, "
        f"read {output.human_bytes(result.bytes_read)}, "
        f"new {output.human_bytes(result.new_bytes)} in {result.new_objects} objects "
        f"({output.human_bytes(result.stored_bytes)} stored); "
        f"cut {result.xml_files - result.xml_reused} of {result.xml_files} XML files "
        f"({result.xml_reused} known, "
        f"{output.human_bytes(result.xml_resumed_bytes)} of the rest resumed, "
        f"{output.human_bytes(result.xml_grafted_bytes)} grafted)",
        markup=False,
    )
    for raw in result.raw_xml:
        output.err.print(f"  kept raw: {raw['member']}: {raw['reason']}", markup=False)


@app.command()
def export(
    snapshot: Annotated[
        str, typer.Argument(help="Snapshot: id prefix, COURSE@latest, COURSE@~N, COURSE@<time>.")
    ],
    out: Annotated[str, typer.Option(
        "--output", "-o", help="Archive file to write; - for standard output.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="tgz or zip (default: as ingested).")
    ] = None,
    level: Annotated[
        int,
        typer.Option(
            "--level",
            help="Deflate level 0-9; 6 as Moodle writes: 4% smaller, 1.7x slower.",
        ),
    ] = api.DEFAULT_LEVEL,
    anonymize: Annotated[bool, typer.Option(
        "--anonymize", help="Users anonymised as Moodle's backup does; their e-mails, "
        "full names and IPs replaced in every member, profile pictures left out.")] = False,
    no_users: Annotated[bool, typer.Option(
        "--no-users", help="User data left out, as Moodle's backup without users "
        "writes the course.")] = False,
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
    wait: WaitOpt = 0.0,
    no_lock: NoLockOpt = False,
) -> None:
    """Rebuild a snapshot as an .mbz archive that Moodle restores."""
    if not out:
        raise UsageError("-o is empty: give the archive's file name, or - for standard output")
    stream = _stdout_for_archive(json_out) if out == "-" else None
    label = "standard output" if stream else os.path.basename(out)
    with (
        open_repo(repo, cache_dir, catalog, wait=wait, no_lock=no_lock) as r,
        output.progress_bar(f"export {label}", enabled=not json_out) as bar,
    ):
        result = api.export(r, snapshot, stream or out, fmt=fmt, level=level, progress=bar,
                            anonymize=anonymize, no_users=no_users)
    for warning in result.warnings:
        output.error(warning, "warning")
    if json_out:
        output.print_json(result.as_dict())
        return
    # on stderr when the archive is stdout: the summary must not end up in it
    (output.err if stream else output.out).print(
        f"wrote {label if stream else result.path} ({result.format}, {result.members} members, "
        f"{output.human_bytes(result.bytes)} of content) from snapshot {result.snapshot[:12]}",
        markup=False,
    )


def _stdout_for_archive(json_out: bool) -> BinaryIO:
    """Standard output as ``export -o -``'s archive, once it is fit to take one:
    not a terminal (an archive on a screen is noise, as gzip and tar refuse),
    and not also the place of ``--json``'s summary."""
    if json_out:
        raise UsageError("--json prints to standard output, which -o - gives the archive: "
                         "use one of them")
    if sys.stdout is None:  # started with it closed (>&-): Python gives None
        raise UsageError("standard output is closed: -o - has nowhere to write the archive")
    if sys.stdout.isatty():
        raise UsageError("refusing to write an archive to a terminal: redirect standard "
                         "output or give -o a file name")
    return sys.stdout.buffer


def _print_members(members: list[Any], json_out: bool) -> None:
    rows: list[dict[str, Any]] = [
        {"name": m.name, "kind": m.kind, "size": m.size, "mtime": m.mtime,
         "content": m.content_kind}
        for m in members
    ]
    if json_out:
        output.print_json(rows)
        return
    for row in rows:
        output.out.print(
            f"{row['kind'][0]} {row['size']:>10} {row['content']:<13} {row['name']}",
            markup=False,
        )


@app.command("ls")
def ls_cmd(
    snapshot: Annotated[str, typer.Argument(help="Snapshot selector.")],
    path: Annotated[
        str | None, typer.Argument(help="An XML member: list its element tree; a folder: "
                                   "the members in it.")
    ] = None,
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List a snapshot's members, or the element records of one XML member."""
    if path is not None:  # as an archive lists it (tar's ./), or as a user types it
        path = path.removeprefix("./").lstrip("/") or None
    with open_repo(repo, cache_dir, catalog) as r:
        members = None
        if path is None:
            _snap, tree = api.archive_tree(r, snapshot)
            members = tree.members
        elif path.endswith("/") or "." not in path.rsplit("/", 1)[-1]:
            # a folder (`cat` of one says: list it with ls): the members in it
            _snap, tree = api.archive_tree(r, snapshot)
            folder = path.strip("/") + "/"
            inside = [m for m in tree.members if m.path.startswith(folder)]
            found = tree.find(path.strip("/"))
            if inside or (found is not None and found.is_dir):
                members = inside
        if members is not None or path is None:
            _print_members(members or [], json_out)
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
    with open_repo(repo, cache_dir, catalog) as r:
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
    with open_repo(repo, cache_dir, catalog) as r:
        if json_out:  # streamed: flat memory however many there are
            output.print_json_array(api.iter_snapshots(r, course))
            return
        rows = api.list_snapshots(r, course)
    output.print_table(
        ["id", "course", "time", "source", "new bytes", "new objects"],
        [
            [
                row["id"][:12],
                row["course"],
                row["time"],
                api.source_label(row["source"]),
                output.human_bytes(row["new_bytes"]),
                row["new_objects"],
            ]
            for row in rows
        ],
    )
