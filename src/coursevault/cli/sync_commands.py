"""sync: copy course history from one repository into another."""

from __future__ import annotations

from typing import Annotated

import typer

from coursevault import api
from coursevault.cli import output
from coursevault.cli.base import (
    CacheOpt,
    JsonOpt,
    WaitOpt,
    _or_before_command,
    app,
    cache_dir_for,
    password,
    read_password_file,
    remote_options,
)
from coursevault.errors import EXIT_FAILURE


@app.command()
def sync(
    source: Annotated[str, typer.Argument(help="Repository to copy from.")],
    destination: Annotated[
        str, typer.Argument(help="Repository to copy into (created, like SOURCE, if empty).")
    ],
    course: Annotated[
        list[str] | None,
        typer.Option(
            "--course", help="Copy only this course's snapshots (repeatable; default: all)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be copied; write nothing.")
    ] = False,
    to_password_file: Annotated[
        str | None,
        typer.Option(
            "--to-password-file",
            help="File holding an encrypted DESTINATION's passphrase, if not the source's.",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs", "-j", help="Packs read and written at once, 1-64 (default 4); 1: one at a time."
        ),
    ] = None,
    refill: Annotated[
        bool,
        typer.Option(
            "--refill",
            help="Also walk the snapshots DESTINATION already holds and copy what it lacks "
            "of them (after `coursevault repair packs` there dropped a lost pack).",
        ),
    ] = False,
    cache_dir: CacheOpt = None,
    json_out: JsonOpt = False,
    wait: WaitOpt = 0.0,
    no_lock: Annotated[
        bool,
        typer.Option(
            "--no-lock",
            help="Read SOURCE without locking it, for a source this host may only read "
            "(DESTINATION is locked all the same).",
            callback=_or_before_command,
        ),
    ] = False,
) -> None:
    """Copy into DESTINATION the objects and snapshots it lacks, verifying every object."""
    with output.progress_bar("sync", enabled=not json_out) as bar:
        report = api.sync(
            source,
            destination,
            courses=course or None,
            dry_run=dry_run,
            cache_dir=cache_dir_for(cache_dir),
            lock_wait=wait,
            progress=bar,
            remote=remote_options(),
            password=password,
            destination_password=(
                None if to_password_file is None else lambda: read_password_file(to_password_file)
            ),
            jobs=jobs,
            no_lock=no_lock,
            refill=refill,
        )
    for note in report.notes:
        output.error(note, "warning")
    if json_out:
        output.print_json(report.as_dict())
        _fail_if_incomplete(report)
        return
    verb = "would copy" if dry_run else "copied"
    made = " (created it)" if report.initialized else ""
    output.out.print(
        f"{verb} {report.snapshots} snapshots, {report.objects} objects, "
        f"{output.human_bytes(report.bytes)} into {report.destination or destination}{made}; "
        f"{report.blocks_copied} blocks whole ({report.packs_whole} packs as they were), "
        f"{report.objects_repacked} objects repacked, "
        f"{report.packs_resumed} packs already there; {report.requests} requests"
        + (f"; walked the {report.refilled} snapshots it held" if refill else ""),
        markup=False,
    )
    _fail_if_incomplete(report)


def _fail_if_incomplete(report: api.SyncReport) -> None:
    """Exit 1 when a source snapshot was left behind as damaged: a sync
    that exits 0 must mean the destination holds every snapshot asked for."""
    if report.damaged:
        n = len(report.damaged)
        output.error(
            "1 snapshot not copied: its record at the source is damaged" if n == 1
            else f"{n} snapshots not copied: their records at the source are damaged"
        )
        raise typer.Exit(EXIT_FAILURE)
