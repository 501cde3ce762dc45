"""Commands about the repository itself: init, stats, check, index rebuild, unlock."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from coursevault import __version__, api
from coursevault.cli import output
from coursevault.cli.base import (
    CacheOpt,
    CatalogOpt,
    JsonOpt,
    NoLockOpt,
    RepoOpt,
    WaitOpt,
    app,
    index_app,
    location_label,
    open_repo,
    password,
    print_notices,
    remote_options,
    repair_app,
)
from coursevault.cli.key_commands import NewPasswordFile, new_password
from coursevault.errors import EXIT_FAILURE


@app.command()
def version() -> None:
    """Print the version."""
    output.out.print(f"coursevault {__version__}")


@app.command()
def init(
    path: Annotated[str | None, typer.Argument(help="Folder for the new repository.")] = None,
    repo: RepoOpt = "",
    pack_size: Annotated[int, typer.Option(help="Target pack file size in MiB, 1-1024.")] = 16,
    block_size: Annotated[
        int,
        typer.Option(
            help="Compression block size in KiB, 1-8192.  Bigger blocks compress a "
            "course better; reading one record (diff, cat) decodes its whole block."
        ),
    ] = api.DEFAULT_BLOCK_SIZE // 1024,
    dictionary_depth: Annotated[
        int,
        typer.Option(
            help="Nights compressed against the nights before them in a row, 0-16 "
            "(0: never). Prune frees a forgotten night's small records at most this "
            "many nights later."
        ),
    ] = api.DEFAULT_DICT_DEPTH,
    encrypt: Annotated[bool, typer.Option(
        "--encrypt", help="Encrypt everything it will hold under a passphrase "
        "(--new-password-file, COURSEVAULT_NEW_PASSWORD, or asked).")] = False,
    new_password_file: NewPasswordFile = None,
    keys_from: Annotated[str | None, typer.Option(
        "--keys-from", help="An encrypted repository (opened with --password-file or "
        "COURSEVAULT_PASSWORD...) whose ids this one computes alike, so the two sync; "
        "its own data key and passphrase.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a new, empty repository."""
    location = path or repo
    if keys_from is not None and not encrypt:
        raise api.UsageError("--keys-from makes an encrypted repository: add --encrypt")
    if keys_from is not None:  # exit 2 or 10 for a plain or missing one, before any passphrase
        api.require_encrypted(keys_from, remote_options())
    id_key = None if keys_from is None else api.id_key_of(keys_from, password(),
                                                         remote_options())
    config = api.init_repository(
        location,
        remote_options(),
        pack_size=pack_size * 1024 * 1024,
        block_size=block_size * 1024,
        dictionary_depth=dictionary_depth,
        password=new_password(new_password_file, or_current=True) if encrypt else None,
        id_key=id_key,
    )
    config.pop("encryption", None)  # the wrapped keys are no one's business here
    config["encrypted"] = encrypt
    if json_out:
        output.print_json({"location": location_label(location), **config})
    else:
        output.out.print(f"created repository {config['id']} at {location_label(location)}")


@app.command()
def stats(
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show what the repository holds and how much space it takes."""
    with open_repo(repo, cache_dir, catalog) as r:
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
    read_data_subset: Annotated[
        str | None,
        typer.Option(
            "--read-data-subset",
            metavar="N/T|P%",
            help="Read and verify only some packs: the N-th of T groups (N/T: reading "
            "group 1, 2, ... T on T nights reads them all) or P% of them at random.",
        ),
    ] = None,
    json_out: JsonOpt = False,
    wait: WaitOpt = 0.0,
    no_lock: NoLockOpt = False,
) -> None:
    """Verify that every snapshot is complete (and, with --read-data, every byte)."""
    if read_data_subset is not None:
        api.pack_subset(read_data_subset)  # a wrong value refused before the repository opens
    with (
        open_repo(repo, cache_dir, catalog, wait=wait, no_lock=no_lock) as r,
        output.progress_bar("check", enabled=not json_out, unit="packs") as bar,
    ):
        report = api.check(r, read_data=read_data, subset=read_data_subset, progress=bar)
    read = read_data or read_data_subset is not None
    summary = {
        "ok": report.ok,
        "snapshots": report.snapshots,
        "index_files": report.index_files,
        "packs": report.packs,
        "objects": report.objects,
        "reachable_objects": report.reachable,
        "packs_read": report.packs_read,
        "bytes_read": report.bytes_read,
        "errors": len(report.errors),
        "warnings": len(report.problems) - len(report.errors),
        "problems": [
            {"severity": p.severity, "kind": p.kind, "message": p.message} for p in report.problems
        ],
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
            + (f", read {output.human_bytes(report.bytes_read)}" if read else "")
            + (f" ({report.packs_read} of {report.packs} packs)" if read_data_subset is not None else "")
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
    wait: WaitOpt = 0.0,
) -> None:
    """Recreate the catalog from the repository's index and snapshot files.

    A damaged index file is skipped (and named): `repair index` indexes its
    objects again from the packs."""
    with open_repo(repo, cache_dir, catalog, sync=False, wait=wait) as opened:
        counts = api.rebuild_index(opened)
        print_notices(opened)
    if json_out:
        output.print_json(counts)
    else:
        damaged = counts["damaged_index_files"]
        output.out.print(
            f"catalog rebuilt: {counts['objects']} objects from {counts['index_files']} index files, "
            f"{counts['snapshots']} snapshots"
            + (f"; {len(damaged)} damaged index files skipped" if damaged else "")
        )
    if counts["damaged_index_files"]:
        raise typer.Exit(EXIT_FAILURE)


@repair_app.command("index")
def repair_index(
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Index again, from the packs' own tables of contents, every object no
    sound index file names; then remove the damaged index files."""
    with open_repo(repo, cache_dir, catalog, sync=False, wait=wait) as opened:
        with output.progress_bar("repair index", enabled=not json_out, unit="packs") as advance:
            report = api.repair_index(opened, progress=advance)
        print_notices(opened)
    if json_out:
        output.print_json(dataclasses.asdict(report))
    else:
        for problem in report.unreadable:
            output.error(f"{problem}: its objects are lost", "warning")
        output.out.print(
            f"read {report.packs} packs ({report.blocks} blocks): indexed {report.objects_indexed} "
            f"objects in {report.index_files_written} new index files, removed "
            f"{len(report.index_files_removed)} damaged ones"
        )


@repair_app.command("journal")
def repair_journal(
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Write the journal of index and snapshot files afresh from a listing
    (when `check` says it is out of step, or to start one in an older
    repository)."""
    with open_repo(repo, cache_dir, catalog, sync=False, wait=wait) as opened:
        counts = api.repair_journal(opened)
        print_notices(opened)
    if json_out:
        output.print_json(counts)
    else:
        output.out.print(
            f"journal written afresh: {counts['index_files']} index files, "
            f"{counts['snapshots']} snapshots (checkpoint {counts['generation']})"
        )


@repair_app.command("refs")
def repair_refs(
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Rewrite damaged head refs (when `check` reports one) from the course's
    snapshots, so its backups can go on; and a course's last snapshot record,
    if damaged, from the copy its ref holds."""
    with open_repo(repo, cache_dir, catalog, wait=wait) as opened:
        rows = api.repair_refs(opened)
        print_notices(opened)
    if json_out:
        output.print_json(rows)
        return
    for row in rows:
        output.out.print(f"{row['ref']}: {row['damage']}: {row['action']}", markup=False)
    records = sum(row["action"] == "record restored" for row in rows)
    refs = len(rows) - records
    said = [f"{refs} damaged refs repaired"] if refs else []
    said += [f"{records} damaged snapshot records restored"] if records else []
    output.out.print(", ".join(said) if said else "no damaged refs or snapshot records")


@app.command()
def unlock(
    repo: RepoOpt = "",
    remove_all: Annotated[
        bool, typer.Option("--remove-all", help="Remove all locks, not only stale ones.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Remove stale locks left by processes that died."""
    removed = api.unlock(repo, remove_all=remove_all, remote=remote_options())
    if json_out:
        output.print_json([{"lock": lk.key, "holder": lk.describe()} for lk in removed])
    elif removed:
        for lk in removed:
            output.out.print(f"removed {lk.describe()}")
    else:
        output.out.print("no stale locks")


@repair_app.command("packs")
def repair_packs(
    repo: RepoOpt = "",
    cache_dir: CacheOpt = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Replace each damaged pack (its bytes no longer hash to its name) by new
    packs holding what of it still reads whole, and drop a missing pack's
    objects from the index; then `check` names the snapshots that need what
    was lost."""
    with open_repo(repo, cache_dir, catalog, sync=False, wait=wait) as opened:
        with output.progress_bar("repair packs", enabled=not json_out, unit="packs") as advance:
            report = api.repair_packs(opened, progress=advance)
        print_notices(opened)
    if json_out:
        output.print_json(dataclasses.asdict(report))
        return
    for pack in report.damaged:
        output.error(f"pack {pack} was damaged: replaced", "warning")
    for oid in report.objects_lost:
        output.error(f"object {oid} could not be read whole: lost", "warning")
    for pack in report.missing:
        output.error(f"pack {pack} is missing: its objects dropped from the index", "warning")
    lost = len(report.objects_lost) + report.objects_dropped
    output.out.print(
        f"read {report.packs} packs: {len(report.damaged)} damaged, "
        f"{len(report.missing)} missing, "
        f"{report.objects_salvaged} objects salvaged into {report.packs_written} packs, "
        f"{lost} lost"
        + (
            "; run `coursevault check` to see which snapshots need them (`coursevault sync "
            "OTHER HERE --refill` copies them back from a repository that holds them)"
            if lost
            else ""
        ),
        markup=False,
    )
