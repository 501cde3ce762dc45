"""The Python API a user can script against; the CLI is a thin layer over it.

Everything here takes explicit arguments (locations, cache folders, catalog
URLs): reading the environment is the CLI's job alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from coursevault.errors import (
    ArchiveError,
    ArchivesRefusedError,
    BadInputError,
    NoRepositoryError,
    SelectorError,
    UsageError,
    WrongPasswordError,
)
from coursevault.history.retention import Policy, apply_policy
from coursevault.history.selectors import resolve
from coursevault.history.times import parse_time
from coursevault.restore.export_options import DEFAULT_LEVEL, FORMATS, validate_level
from coursevault.snapshot.labels import source_label, validate_course_key
from coursevault.store import keys
from coursevault.store.backend import Backend, LocalBackend
from coursevault.store.catalog import SnapshotRow
from coursevault.store.catalog_sync import SNAPSHOT_NAME
from coursevault.store.checksubset import pack_subset as pack_subset
from coursevault.store.consolidate import MERGE_MIN as MERGE_MIN
from coursevault.store.diskcache import bypassed, disk_cache
from coursevault.store.keys import Password
from coursevault.store.locks import LockInfo, remove_stale_locks
from coursevault.store.repository import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_DICT_DEPTH,
    Repository,
)
from coursevault.store.s3backend import DEFAULT_CONNECTIONS as S3_CONNECTIONS
from coursevault.store.s3backend import READ_TIMEOUT as S3_TIMEOUT
from coursevault.store.s3backend import S3Backend, S3Location
from coursevault.store.wrappers import ConcurrencyLimiter, CountingBackend, RetryingBackend

if TYPE_CHECKING:  # imported where used: a nightly ingest or backup needs none of these
    from coursevault.diff.changes import TreeDiff
    from coursevault.moodledb.demosite import DemoSiteReport
    from coursevault.restore.dbrestore import CommitWindow, RestoreRequest
    from coursevault.restore.export import ExportResult
    from coursevault.snapshot.dbbackup import BackupRequest, CourseBackup, CourseProgress
    from coursevault.snapshot.ingest import IngestResult
    from coursevault.store.check import CheckReport
    from coursevault.store.prune import PruneReport
    from coursevault.store.repair import RepairReport, SalvageReport
    from coursevault.store.replicate import SyncReport
    from coursevault.tree.archive_tree import ArchiveTree, Member
    from coursevault.tree.elements import Element

# what the CLI shows and passes through, named here so it needs nothing below the API
__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_DICT_DEPTH",
    "DEFAULT_LEVEL",
    "FORMATS",
    "S3_CONNECTIONS",
    "S3_TIMEOUT",
    "ArchiveError",
    "BackupRequest",
    "CommitWindow",
    "CourseBackup",
    "IngestResult",
    "Policy",
    "RemoteOptions",
    "Repository",
    "RestoreRequest",
    "SyncReport",
    "UsageError",
    "WrongPasswordError",
    "source_label",
]
Progress = Callable[[int, int], None]


def allocator_for_backup() -> bool:
    """Hold glibc's allocator to a backup process's thresholds
    (:mod:`coursevault.allocator`; the CLI's process does, before it
    imports what a backup needs)."""
    from coursevault import allocator

    return allocator.for_backup()

# What the API hands out from the doors and the restores, imported when
# first asked for: every command imports this module, and ``log`` or
# ``check`` has no use for the backup definitions, the archive reader or
# the database restore (a third of the CLI's start-up).
_LAZY = {
    "RestoreRequest": "coursevault.restore.dbrestore",
    "CommitWindow": "coursevault.restore.dbrestore",
    "ExportResult": "coursevault.restore.export",
    "BackupRequest": "coursevault.snapshot.dbbackup",
    "CourseBackup": "coursevault.snapshot.dbbackup",
    "CourseProgress": "coursevault.snapshot.dbbackup",
    "IngestResult": "coursevault.snapshot.ingest",
    "SyncReport": "coursevault.store.replicate",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


# packs in flight per writer: each holds its bytes (16 MiB by default)
S3_PACK_UPLOADS = 2


@dataclass(frozen=True)
class RemoteOptions:
    """How to reach a repository in object storage (``s3://bucket/prefix``):
    the endpoint of a non-AWS service (None: AWS itself) and how many
    requests may be in flight at once.  Credentials and region are boto3's
    own (the AWS environment variables and configuration files)."""

    endpoint_url: str | None = None
    connections: int = S3_CONNECTIONS
    timeout: float = S3_TIMEOUT  # seconds a request waits for the service's next bytes


def backend_for(location: str, remote: RemoteOptions | None = None) -> Backend:
    """Choose the backend for a repository location: a folder path, or
    ``s3://bucket/prefix`` -- the S3 backend inside a concurrency limit and
    retries (``store/wrappers.py``); ``open_repository`` adds its disk cache."""
    if not location:
        raise BadInputError("no repository given: use --repo/-r or set COURSEVAULT_REPO")
    if location.startswith("s3://"):
        remote = remote or RemoteOptions()
        if remote.connections < 1:
            raise BadInputError(f"--s3-connections must be 1 or more, not {remote.connections}")
        if not 0 < remote.timeout <= 3600:
            raise BadInputError(f"--s3-timeout must be more than 0 and at most 3600 seconds, "
                                f"not {remote.timeout:g}")
        s3 = S3Backend(
            S3Location.parse(location),
            endpoint_url=remote.endpoint_url,
            connections=remote.connections,
            read_timeout=remote.timeout,
        )
        return RetryingBackend(ConcurrencyLimiter(s3, remote.connections))
    if "://" in location:
        scheme = location.split("://", 1)[0]
        raise BadInputError(f"repository location scheme {scheme!r} is not supported yet")
    return LocalBackend(os.path.abspath(location))


def init_repository(
    location: str, remote: RemoteOptions | None = None, **options: Any
) -> dict[str, Any]:
    """Create a repository (``password=``: an encrypted one)."""
    return Repository.init(backend_for(location, remote), **options)


def id_key_of(location: str, password: bytes, remote: RemoteOptions | None = None) -> bytes:
    """The id key of the encrypted repository at ``location`` (``init
    --keys-from``: a repository of its own that syncs with it)."""
    return keys.id_key_of(backend_for(location, remote), password)


def require_encrypted(location: str, remote: RemoteOptions | None = None) -> None:
    """Before a key command asks for a passphrase: there is a repository,
    and it is encrypted."""
    keys.require_encrypted(backend_for(location, remote))


def key_slots(location: str, password: bytes,
              remote: RemoteOptions | None = None) -> list[dict[str, Any]]:
    return keys.list_slots(backend_for(location, remote), password)


def add_key(location: str, password: bytes, new_password: bytes,
            remote: RemoteOptions | None = None) -> str:
    return keys.add_slot(backend_for(location, remote), password, new_password)


def remove_key(location: str, password: bytes, slot_id: str,
               remote: RemoteOptions | None = None) -> None:
    keys.remove_slot(backend_for(location, remote), password, slot_id)


def change_key_password(location: str, password: bytes, new_password: bytes,
                        remote: RemoteOptions | None = None) -> str:
    return keys.change_password(backend_for(location, remote), password, new_password)


def open_repository(
    location: str,
    *,
    cache_dir: str | None = None,
    catalog_url: str | None = None,
    sync: bool = True,
    lock_wait: float = 0.0,
    remote: RemoteOptions | None = None,
    password: Password = None,
) -> Repository:
    """Open a repository; ``sync=False`` skips bringing the catalog up to date,
    for callers that only write (a write session syncs once it holds its lock).

    ``lock_wait`` is how many seconds every operation on it waits for a
    conflicting lock (``math.inf``: as long as it takes) before it fails with
    LockHeldError: a nightly ingest queues behind a prune instead of skipping
    a night.
    """
    if not lock_wait >= 0:  # NaN too
        raise BadInputError(f"--wait must be 0 or more seconds, not {lock_wait}")
    repo = Repository.open(
        backend_for(location, remote),
        cache_dir=cache_dir,
        catalog_url=catalog_url,
        sync=sync,
        wrap=disk_cache if location.startswith("s3://") else None,
        password=password,
    )
    repo.lock_wait = lock_wait
    if location.startswith("s3://"):  # a pack uploads while the next is compressed
        repo.pack_uploads = min((remote or RemoteOptions()).connections, S3_PACK_UPLOADS)
    return repo


def repository_stats(repo: Repository) -> dict[str, Any]:
    return repo.stats()


def check(
    repo: Repository,
    *,
    read_data: bool = False,
    subset: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Check the repository; ``read_data`` reads every pack, ``subset``
    (``--read-data-subset``, :func:`pack_subset`) some of them."""
    from coursevault.store.check import check_repository  # as the other maintenance commands

    read_packs = None if subset is None else pack_subset(subset)
    with repo.lock(exclusive=False, operation="check", reads_only=True), bypassed(repo.backend):
        return check_repository(
            repo, read_data=read_data or read_packs is not None, read_packs=read_packs,
            progress=progress,
        )


def rebuild_index(repo: Repository) -> dict[str, Any]:
    """Recreate the catalog from the index and snapshot files; a damaged
    index file is skipped and named (``damaged_index_files``).  Under a shared
    lock, as a prune deleting index files meanwhile would leave it incomplete."""
    with repo.lock(exclusive=False, operation="index rebuild"), bypassed(repo.backend):
        return repo.rebuild_catalog()


def repair_packs(
    repo: Repository, progress: Callable[[int, int], None] | None = None
) -> SalvageReport:
    """Replace each damaged pack by what of it still reads whole (under the
    exclusive lock); what does not is reported lost."""
    from coursevault.store.repair import salvage_packs

    with repo.lock(exclusive=True, operation="repair packs"), bypassed(repo.backend):
        return salvage_packs(repo, progress)


def repair_index(
    repo: Repository, progress: Callable[[int, int], None] | None = None
) -> RepairReport:
    """Index again from the packs whatever no sound index file names, and
    remove the damaged index files (under the exclusive lock)."""
    from coursevault.store.repair import repair_index as repair_index_files

    with repo.lock(exclusive=True, operation="repair index"), bypassed(repo.backend):
        return repair_index_files(repo, progress)


def repair_refs(repo: Repository) -> list[dict[str, Any]]:
    """Rewrite the damaged head refs (``check`` reports them, kind ``ref``)
    from their courses' snapshots, under the exclusive lock."""
    from coursevault.store.refcheck import repair_refs as rewrite

    with repo.lock(exclusive=True, operation="repair refs"), bypassed(repo.backend):
        return rewrite(repo)


def repair_journal(repo: Repository) -> dict[str, Any]:
    """Write the journal afresh from a listing of index/ and snapshots/
    (under the exclusive lock: no writer is between a file and its entry),
    under a new journal id, so that every catalog reads it from there; in a
    repository from before the journal, this starts one."""
    from coursevault.store.catalog_sync import checkpoint_from_listing

    with repo.lock(exclusive=True, operation="repair journal"):
        pointer = checkpoint_from_listing(repo, fresh=True)
        repo.sync_catalog()
    return {
        "journal": pointer.journal,
        "generation": pointer.gen,
        "index_files": len(repo.catalog.index_files()),
        "snapshots": len(repo.catalog.snapshot_ids()),
    }


def unlock(
    location: str, *, remove_all: bool = False, remote: RemoteOptions | None = None
) -> list[LockInfo]:
    """Remove stale locks (or all, when the user is sure nothing runs)."""
    backend = backend_for(location, remote)
    if not backend.exists("config"):
        raise NoRepositoryError(f"no repository at {backend.location()}")
    return remove_stale_locks(backend, remove_all=remove_all)


# -- snapshots: ingest, export, browse -------------------------------------------------
def ingest(
    repo: Repository,
    path: str,
    *,
    course: str | None = None,
    when: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestResult:
    """Store one .mbz archive as a snapshot (all or nothing).

    ``course`` and ``when`` are checked before the archive is read: a bad one
    is refused at once, not after minutes of work (and ``""`` is no key, not
    the default one).  ``progress(done, total)`` is called as members are
    read, with their bytes so far and, when the archive lists them up front
    (a Moodle tgz's .ARCHIVE_INDEX), the bytes it will read in all (else 0).
    """
    if course is not None:
        validate_course_key(course)
    if when is not None:
        parse_time(when)
    if progress is not None:
        from coursevault.snapshot.source import archive_listed_bytes

        progress = _with_total(progress, archive_listed_bytes(path))
    from coursevault.snapshot.ingest import ingest_archive

    return ingest_archive(repo, path, course=course, when=when, progress=progress)


def ingest_archives(
    repo: Repository,
    paths: list[str],
    *,
    course: str | None = None,
    when: str | None = None,
    progress: Callable[[str], AbstractContextManager[Progress | None]] | None = None,
) -> Iterator[tuple[str, IngestResult | ArchiveError]]:
    """Store each archive as a snapshot, yielding ``(path, result)`` as it is
    stored, or ``(path, error)`` for one refused as bad.

    The rule a nightly run over many courses depends on: one broken archive
    is refused, the others are stored all the same, and the run then fails
    with :class:`ArchivesRefusedError` (exit 2) once all were tried.  A single
    archive's refusal is raised as it is; anything but bad input (a full
    disk, a damaged repository) stops the run.  ``progress(path)`` gives a
    context holding the callback for that archive's progress.
    """
    refused = 0
    for path in paths:
        try:
            with progress(path) if progress is not None else nullcontext(None) as bar:
                result = ingest(repo, path, course=course, when=when, progress=bar)
        except ArchiveError as exc:
            if len(paths) == 1:
                raise
            refused += 1
            yield path, exc
            continue
        yield path, result
    if refused:
        raise ArchivesRefusedError(refused, len(paths))


def _with_total(progress: Callable[[int, int], None], total: int) -> Callable[[int, int], None]:
    def report(done: int, _unknown: int) -> None:
        progress(done, total)

    return report


def backup(
    repo: Repository,
    request: BackupRequest,
    *,
    progress: CourseProgress | None = None,
    jobs: int = 1,
) -> Iterator[CourseBackup]:
    """Back courses up straight from a Moodle database, one snapshot each
    (snapshot/dbbackup.py): yields each course's outcome as it is known;
    ``progress(courseid, shortname)`` gives a context holding the callback
    for that course's tasks; ``jobs`` courses are backed up at once."""
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    repo.refuse_no_lock("backup")  # before the site is read, not once per course
    from coursevault.snapshot.dbbackup import backup_courses

    return backup_courses(repo, request, progress=progress, jobs=jobs)


def restore_to_database(
    repo: Repository, request: RestoreRequest, window: CommitWindow | None = None
) -> dict[str, Any]:
    """Restore a snapshot straight into a Moodle database as a new course
    (restore/dbrestore.py): all or nothing; ``dry_run`` writes nothing.
    ``window``: a caller that reports the restore itself keeps Ctrl-C noted
    from the commit until it has (then closes it)."""
    from coursevault.restore.dbrestore import restore_snapshot

    return restore_snapshot(repo, resolve(repo, request.selector), request, window)


def backup_runs(repo: Repository, course: str | None = None) -> list[dict[str, Any]]:
    """The backup runs the catalog logged, oldest first, with ISO times."""
    from coursevault.history.times import format_time

    if course is not None:  # "" listed nothing, as a course no run has
        validate_course_key(course)
    return [{**row, "time": format_time(row["started"])} for row in repo.runs(course)]


def resolve_snapshot(repo: Repository, selector: str) -> SnapshotRow:
    return resolve(repo, selector)


def export(
    repo: Repository,
    selector: str,
    out: str | BinaryIO,
    *,
    fmt: str | None = None,
    level: int = DEFAULT_LEVEL,
    progress: Callable[[int, int], None] | None = None,
    anonymize: bool = False,
    no_users: bool = False,
) -> ExportResult:
    """Rebuild snapshot ``selector`` as an .mbz: into the file ``out``, made
    whole or not at all, or onto the binary stream ``out`` as it is made."""
    validate_level(level)  # before any work
    if anonymize and no_users:  # as backup --db refuses it: Moodle has no such backup
        raise UsageError("--anonymize anonymises the users: it cannot go with --no-users")
    if fmt is not None and fmt not in FORMATS:
        raise BadInputError(f"unknown archive format {fmt!r}: use {' or '.join(FORMATS)}")
    snap = resolve(repo, selector)
    from coursevault.restore.export import export_snapshot

    return export_snapshot(repo, snap.id, out, fmt=fmt, level=level, progress=progress,
                           anonymize=anonymize, no_users=no_users)


def archive_tree(repo: Repository, selector: str) -> tuple[SnapshotRow, ArchiveTree]:
    snap = resolve(repo, selector)
    from coursevault.tree.archive_tree import load_archive

    return snap, load_archive(repo.get, bytes.fromhex(snap.root))


def member_or_error(tree: ArchiveTree, snap: SnapshotRow, path: str) -> Member:
    member = tree.find(path)
    if member is None:
        raise BadInputError(f"snapshot {snap.id[:12]} has no member {path!r}")
    return member


def cat(repo: Repository, selector: str, path: str, write: Callable[[bytes], object]) -> None:
    """Write a member's bytes, or those of the elements at ``member:/address``."""
    from coursevault.restore.export import write_content
    from coursevault.tree.elements import element_bytes, find

    snap, tree = archive_tree(repo, selector)
    member_path, sep, address = path.partition(":")
    member = member_or_error(tree, snap, member_path)
    if member.is_dir:
        raise BadInputError(f"{member_path} is a folder: list it with ls")
    if not sep:
        write_content(repo.get, tree, member, write)
        return
    if member.content_kind != "xml" or member.content is None:
        raise BadInputError(
            f"{member_path} is not a stored XML document; cat it without an address"
        )
    found = False
    for el in find(repo.get, member.content, address):
        write(element_bytes(repo.get, el) + b"\n")
        found = True
    if not found:
        raise BadInputError(f"no element matches {address!r} in {member_path}")


def element_outline(
    repo: Repository, selector: str, path: str
) -> Iterator[tuple[int, Element, int]]:
    from coursevault.tree.elements import outline

    snap, tree = archive_tree(repo, selector)
    member = member_or_error(tree, snap, path)
    if member.content_kind != "xml" or member.content is None:
        raise BadInputError(f"{path} is not a stored XML document")
    return outline(repo.get, member.content)


def list_snapshots(repo: Repository, course: str | None = None) -> list[dict[str, Any]]:
    """Snapshots oldest first, as plain dicts (the CLI's --json shape)."""
    return list(iter_snapshots(repo, course))


def iter_snapshots(repo: Repository, course: str | None = None) -> Iterator[dict[str, Any]]:
    """:func:`list_snapshots` as a stream, in flat memory whatever the
    repository's size (the catalog is read a batch at a time)."""
    for s in repo.iter_snapshots(course):
        stats = s.record.get("stats", {})
        yield {
            "id": s.id,
            "course": s.series,
            "time": s.time,
            "epoch": s.epoch,
            "root": s.root,
            "parents": s.record.get("parents", []),
            "source": s.record.get("source", {}),
            "new_bytes": stats.get("new_bytes", 0),
            "new_objects": stats.get("new_objects", 0),
            "stats": stats,
        }


# -- history: log, diff, forget, prune -------------------------------------------------
def diff(
    repo: Repository, selector_a: str, selector_b: str, path: str | None = None
) -> tuple[SnapshotRow, SnapshotRow, TreeDiff]:
    from coursevault.diff.treediff import diff_snapshots

    a, b = resolve(repo, selector_a), resolve(repo, selector_b)
    return a, b, diff_snapshots(repo.get, bytes.fromhex(a.root), bytes.fromhex(b.root), path)


def log(repo: Repository, course: str) -> Iterator[dict[str, Any]]:
    """The course's snapshots newest first, each with what it changed against its parent."""
    from coursevault.diff.treediff import diff_snapshots

    rows = repo.snapshots(course)
    if not rows:
        raise SelectorError(f"no snapshots of course {course!r}")
    by_id = {r.id: r for r in rows}
    for row in reversed(rows):
        stats = row.record.get("stats", {})
        parents = [p for p in row.record.get("parents", []) if p in by_id]
        entry: dict[str, Any] = {
            "id": row.id,
            "time": row.time,
            "source": source_label(row.record.get("source", {})),
            "parent": parents[0] if parents else None,
            "new_bytes": stats.get("new_bytes", 0),
            "new_objects": stats.get("new_objects", 0),
        }
        if parents:
            d = diff_snapshots(
                repo.get, bytes.fromhex(by_id[parents[0]].root), bytes.fromhex(row.root)
            )
            entry.update({f"records_{k}": v for k, v in d.counts().items()})
            entry["members_changed"] = len(d.members)
        yield entry


@dataclass(frozen=True)
class ForgetRequest:
    """What to forget: a course's or every course's snapshots a policy does
    not keep, or the snapshots named.  Checked when made, before a
    repository is opened: a COURSE or ``all_courses`` (not both), or
    ``snapshots`` with neither and no policy."""

    course: str | None = None
    all_courses: bool = False
    policy: Policy = field(default_factory=Policy)
    snapshots: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.snapshots:
            if self.course is not None or self.all_courses or not self.policy.empty():
                raise UsageError("--snapshot takes no COURSE, --all or --keep-* options")
        elif (self.course is None) == (not self.all_courses):
            raise UsageError("give a COURSE or --all (not both), or --snapshot")


def forget_requested(
    repo: Repository, request: ForgetRequest, *, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Carry out a :class:`ForgetRequest` (see :func:`forget`, :func:`forget_snapshots`)."""
    return list(iter_forget_requested(repo, request, dry_run=dry_run))


def iter_forget_requested(
    repo: Repository, request: ForgetRequest, *, dry_run: bool = False
) -> Iterator[dict[str, Any]]:
    """:func:`forget_requested` a row at a time (a policy's, course by course)."""
    if request.snapshots:
        return iter(forget_snapshots(repo, request.snapshots, dry_run=dry_run))
    return iter_forget(repo, request.policy, course=request.course, dry_run=dry_run)


def diff_lines(d: TreeDiff) -> Iterator[str]:
    """A diff as the lines a reader sees (records shown with their fields)."""
    from coursevault.diff.treediff import iter_lines  # lxml: only for commands that show records

    return iter_lines(d)


def forget(
    repo: Repository, policy: Policy, *, course: str | None = None, dry_run: bool = False
) -> list[dict[str, Any]]:
    """:func:`iter_forget` as a list."""
    return list(iter_forget(repo, policy, course=course, dry_run=dry_run))


def iter_forget(
    repo: Repository, policy: Policy, *, course: str | None = None, dry_run: bool = False
) -> Iterator[dict[str, Any]]:
    """Apply a retention policy per course; delete the snapshots it does not
    keep; a row per snapshot kept or removed, course by course.

    Decided under the lock: after waiting for another forget, deciding on the
    snapshots seen before could keep fewer than the policy says.  Courses
    are decided one at a time and their removals journaled in one entry
    for every ``FORGET_BATCH`` rows: ``--all`` holds a batch's rows, not the
    repository's (it held 7 kB a snapshot), and writes a journal file a
    batch, not one a course.  Bad input is refused here, before the first
    row."""
    policy.check()
    if course is not None and not repo.catalog.snapshots(course):
        raise SelectorError(f"no snapshots of course {course!r}")
    return _forget_rows(repo, policy, course, dry_run)


# Rows ``forget`` decides before it removes their snapshots with one journal
# entry (one file): a row says "remove" only once its snapshot is gone, and
# rows keep their course-by-course order.
FORGET_BATCH = 4096


def _forget_rows(
    repo: Repository, policy: Policy, course: str | None, dry_run: bool
) -> Iterator[dict[str, Any]]:
    with repo.lock(exclusive=True, operation="forget"):
        courses = [course] if course is not None else repo.catalog.series_keys()
        removals: list[tuple[str, list[str]]] = []
        pending: list[dict[str, Any]] = []
        for c in courses:
            rows = repo.snapshots(c)
            if course is not None and not rows:
                raise SelectorError(f"no snapshots of course {course!r}")
            decision = apply_policy(rows, policy)
            pending += (
                {"course": c, "id": snap.id, "time": snap.time, "action": "keep", "reasons": why}
                for snap, why in decision.keep
            )
            pending += (
                {"course": c, "id": snap.id, "time": snap.time, "action": "remove", "reasons": []}
                for snap in decision.remove
            )
            if decision.remove:
                removals.append((c, [snap.id for snap in decision.remove]))
            if len(pending) >= FORGET_BATCH:
                yield from _forget_batch(repo, removals, pending, dry_run)
        yield from _forget_batch(repo, removals, pending, dry_run)


def _forget_batch(
    repo: Repository,
    removals: list[tuple[str, list[str]]],
    pending: list[dict[str, Any]],
    dry_run: bool,
) -> Iterator[dict[str, Any]]:
    """Remove a batch's snapshots (one journal entry), then give its rows;
    both lists are emptied."""
    if removals and not dry_run:
        repo.delete_series_snapshots(removals)
    rows = list(pending)
    removals.clear()
    pending.clear()
    yield from rows


def forget_snapshots(
    repo: Repository, selectors: list[str], *, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Delete the snapshots ``selectors`` name, whatever a policy says: the
    repair for snapshots that need damaged objects (``check`` names them).
    A full snapshot id whose record is itself unreadable (so no listing
    shows it) is deleted too."""
    with repo.lock(exclusive=True, operation="forget"):
        # Every selector is resolved before anything is deleted: a relative
        # one (``k@~1``) read after ``k@latest`` was gone would name another
        # snapshot, and one that does not resolve must delete nothing.
        rows = [_forget_row(repo, selector) for selector in selectors]
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for row in rows:
            if row["id"] in seen:
                continue
            seen.add(row["id"])
            if not dry_run:
                repo.delete_snapshot(row["id"])
            out.append({**row, "action": "remove", "reasons": ["named"]})
    return out


def _forget_row(repo: Repository, selector: str) -> dict[str, Any]:
    """The snapshot ``selector`` names, as a report row; a full id whose
    record is unreadable (so no listing shows it) is named as is."""
    try:
        snap = resolve_snapshot(repo, selector)
        return {"course": snap.series, "id": snap.id, "time": snap.time}
    except SelectorError:
        if not (
            SNAPSHOT_NAME.fullmatch(selector) and repo.backend.exists(repo.record_key(selector))
        ):
            raise
        return {"course": None, "id": selector, "time": None}  # its record is damaged


def prune(
    repo: Repository,
    *,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
    merge_min: int = MERGE_MIN,
) -> PruneReport:
    from coursevault.store.prune import prune_repository

    if merge_min < 0:
        raise UsageError(f"--merge-min must be 0 (never merge) or more, not {merge_min}")
    return prune_repository(repo, dry_run=dry_run, progress=progress, merge_min=merge_min)


def demo_site(
    db_url: str,
    dataroot: str,
    *,
    size: str | None = None,
    seed: int | None = None,
    courses: int | None = None,
    churn: bool = False,
    at: str | None = None,
    prefix: str = "mdl_",
) -> DemoSiteReport:
    """Build a Moodle 4.5 demo site in an empty database (``size`` S, ``seed``
    1 and one course unless given), or (``churn``) apply its next night of
    activity, dated ``at`` (ISO 8601; default now).
    Imported here, not at the top: SQLAlchemy and Moodle's 494 tables are no
    part of the other commands' start-up."""
    if not db_url:
        raise BadInputError("no database given: use --db URL (an SQLAlchemy URL)")
    if not dataroot:
        raise BadInputError("no dataroot given: use --dataroot DIR")
    _demo_options_agree(churn, size=size, seed=seed, courses=courses, at=at)
    from coursevault.moodledb import check_prefix

    check_prefix(prefix)
    if churn:
        from coursevault.moodledb.demochurn import churn_demo_site

        when = None if at is None else int(parse_time(at))
        return churn_demo_site(db_url, dataroot, prefix=prefix, when=when)
    from coursevault.moodledb.demosite import build_demo_site

    return build_demo_site(
        db_url,
        dataroot,
        size=size or "S",
        seed=1 if seed is None else seed,
        courses=1 if courses is None else courses,
        prefix=prefix,
    )


def _demo_options_agree(churn: bool, **given: object) -> None:
    """Refuse what one kind of demo-site run would silently ignore: a night
    changes the site as it was built (its size, seed and courses are in its
    database), and only a night has a time."""
    if churn:
        shaping = [name for name in ("size", "seed", "courses") if given[name] is not None]
        if shaping:
            raise UsageError(
                f"--{shaping[0]} shapes a new demo site: --churn changes the site "
                "as it was built (leave out --size, --seed and --courses)"
            )
    elif given["at"] is not None:
        raise UsageError("--time dates a night of activity: use it with --churn")


def _no_journal(repo: Repository) -> bool:
    """Whether ``repo`` has no journal at all (a destination whose first
    sync was killed before it began one); a damaged one is check's to
    report and ``repair journal``'s to mend, not a sync's."""
    from coursevault.store.journal import JournalDamagedError, read_pointer

    try:
        return read_pointer(repo.backend) is None
    except JournalDamagedError:
        return False


def sync(
    source: str,
    destination: str,
    *,
    courses: list[str] | None = None,
    dry_run: bool = False,
    cache_dir: str | None = None,
    lock_wait: float = 0.0,
    progress: Progress | None = None,
    step: Callable[[str], None] | None = None,
    remote: RemoteOptions | None = None,
    password: Password = None,
    destination_password: Password = None,
    jobs: int | None = None,
    no_lock: bool = False,
    refill: bool = False,
) -> SyncReport:
    """Copy into the repository at ``destination`` what it lacks of the
    snapshots of ``courses`` (all if None) at ``source``
    (``store/replicate.py``); an empty destination is created with the
    source's parameters -- an encrypted source's keys and passphrase slots
    included -- (not by a dry run).  ``destination_password`` opens an
    encrypted destination (default: ``password``).  Requests and bytes are
    counted on both sides, catalog syncs included.  ``jobs``: packs read
    and written at once (default ``replicate.SYNC_JOBS``).  ``no_lock``:
    the source is read without a lock (the destination is written, so it
    is locked all the same).  ``refill``: the snapshots the destination
    already holds are walked too, and what it lacks of them copied (after
    ``repair packs`` there dropped a lost pack's objects)."""
    from coursevault.errors import RepositoryExistsError
    from coursevault.store.replicate import (
        MAX_SYNC_JOBS,
        SYNC_JOBS,
        check_compatible,
        compact_first_journal,
        init_like,
        read_config,
        require_courses,
        sync_repositories,
    )

    jobs = SYNC_JOBS if jobs is None else jobs
    if not 1 <= jobs <= MAX_SYNC_JOBS:
        raise BadInputError(f"--jobs must be 1 to {MAX_SYNC_JOBS}, not {jobs}")

    src_backend = CountingBackend(backend_for(source, remote))
    dst_backend = CountingBackend(backend_for(destination, remote))
    dst_password = password if destination_password is None else destination_password
    # a remote source's disk cache: a first sync reads its packs whole into
    # it, several at once, and walks them there (synccopy.prefetch_packs)
    wrap = disk_cache if source.startswith("s3://") else None
    with Repository.open(src_backend, cache_dir=cache_dir, password=password, wrap=wrap) as src:
        src.lock_wait = lock_wait
        src.no_lock = no_lock
        require_courses(src, courses)
        dst_config = read_config(dst_backend)
        sealed = (dst_config or src.config).get("encryption") is not None
        if destination_password is not None and not sealed:  # it was silently ignored
            raise BadInputError(
                f"--to-password-file: {dst_backend.location()} is not encrypted"
                + ("" if dst_config else " (sync makes a destination encrypted only when its "
                   "source is)"))
        initialized = False
        if dst_config is None and not dry_run:
            try:
                dst_config = init_like(dst_backend, src.config, dst_password)
                initialized = True
            except RepositoryExistsError:  # another sync made it meanwhile
                dst_config = read_config(dst_backend)
        if dst_config is not None:
            check_compatible(src, dst_config, dst_backend.location(), dst_password)
        dst = None if dst_config is None else Repository.open(
            dst_backend, cache_dir=cache_dir, password=dst_password)
        try:
            if dst is not None:
                dst.lock_wait = lock_wait
            report = sync_repositories(
                src, dst, courses=courses, dry_run=dry_run, progress=progress, step=step,
                jobs=jobs, refill=refill,
            )
            # a destination made now, or made by a sync killed before its
            # journal began: one checkpoint of what it holds
            if dst is not None and not dry_run and (initialized or _no_journal(dst)):
                compact_first_journal(dst)
            report.notes = [*src.notices, *(dst.notices if dst is not None else []), *report.notes]
        finally:
            if dst is not None:
                dst.close()
    report.initialized = initialized
    report.source_requests = src_backend.requests
    report.destination_requests = dst_backend.requests
    report.requests = src_backend.requests + dst_backend.requests
    return report
