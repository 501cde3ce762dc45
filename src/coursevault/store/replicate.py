"""Sync: copy into another repository what it lacks of what snapshots reach.

Objects, not files: the unit that crosses is the object, found by walking
the snapshots to copy and stopping at every tree the destination already
indexes (its writers rely on the same rule: an indexed tree comes with
everything it names).  Where a source block's objects are all to be copied
the block crosses as it is -- its bytes, its compression, its dictionary --
so a night synced costs about what the night stored; the objects of blocks
the destination already holds part of are repacked there (codec 1).

Guarantees (docs/format.md, "Sync"):

* every object is hashed on the way and must match its id: a damaged object
  at the source stops the sync before anything naming it is indexed; a
  damaged snapshot record is left behind and listed in ``SyncReport.damaged``
  (the CLI exits 1), the other snapshots copied;
* nothing at the destination is overwritten or deleted (packs, index files
  and snapshots are content-addressed and created only if absent);
* write order: objects are indexed children before parents (the copy order
  is a post-order of the walk), a block compressed against a dictionary is
  copied only once that dictionary and everything its content reads is
  indexed there and reads the same, and snapshot files come last, under the
  course's ref (``series.publish_copied``);
* a snapshot DST holds is taken for complete and not walked; ``refill``
  walks those too, whole, for a DST that lost a pack (``repair packs``
  there first drops its entries, else DST would take them for stored);
* resumable: a rerun walks again, skips what the index names, and a pack
  written but not yet indexed (the same bytes, so the same name) is not
  sent again;
* a first sync of everything (into a destination that indexed nothing)
  reads the source's index once, walks its trees without hashing them
  (the copy hashes every object) and copies whole source packs as they
  are (``synccopy.py``); ``jobs`` packs are read and written at once;
* memory: the plan keeps an entry per object to copy (a few hundred
  bytes; a first sync the source's whole index besides), up to ``jobs``
  units read ahead and ``jobs`` packs in flight (each up to ``pack_size``)
  and the readers' caches of decoded blocks (48 MiB in a first sync's
  walk): the first sync of sync_bench's 8 courses (67,000 objects, 27 MB)
  peaked at 215 MB (209 MB before, one at a time), a night's of one course
  at 85 MB (its dictionaries read at both sides; `snapshots`: 37).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coursevault.errors import (
    BadInputError,
    CorruptionError,
    IncompatibleRepositoryError,
    LockHeldError,
    ObjectMissingError,
    RepositoryError,
    WrongPasswordError,
)
from coursevault.store.backend import Backend, require_empty
from coursevault.store.catalog import SnapshotRow
from coursevault.store.catalog_sync import checkpoint_from_listing
from coursevault.store.crypto import EncryptedBackend
from coursevault.store.diskcache import read_checked
from coursevault.store.ids import ObjectType, object_id
from coursevault.store.journal import write_checkpoint
from coursevault.store.keys import ENCRYPTED_VERSION, Password, Secrets, sealed_backend, unlock
from coursevault.store.locks import Lock
from coursevault.store.pack import pack_files
from coursevault.store.repository import Repository
from coursevault.store.series import first_parent, head_newest, publish_copied
from coursevault.store.snapshots import FANOUT_VERSION, SERIES_FIELD, snapshot_dictionary
from coursevault.store.synccopy import Copier, Progress, prefetch_packs
from coursevault.store.syncplan import SyncPlan

# What must be equal for the same content to be the same objects on both
# sides, and for copied blocks to be readable there.  Pack and block sizes
# and the zstd level only shape what each side writes itself.
# (``version`` is compared as the objects' format: 4 and 5 write the same
# objects as 3, sealed or with their snapshot records in subfolders, and a
# record is written where the destination's layout puts it.)
COMPATIBLE_KEYS = ("version", "chunker", "text_chunker", "dictionary_depth")
# Packs read and written at once by default (``sync --jobs``).
SYNC_JOBS = 4
# ...and at most: each job holds up to two packs (read ahead, in flight) of
# up to the pack size -- 64 jobs of default 16 MiB packs, 2 GiB already
MAX_SYNC_JOBS = 64


def check_compatible(
    src: Repository,
    dst_config: dict[str, Any],
    dst_location: str,
    password: Password = None,
    opened: Secrets | None = None,
) -> None:
    """Refuse a destination that is the source itself, differs in a
    parameter of :data:`COMPATIBLE_KEYS`, or computes ids otherwise (one
    encrypted and not the other, or under another id key: the keys of an
    ``opened`` destination, or those ``password`` opens, are compared)."""
    if dst_config.get("id") == src.config["id"]:
        raise IncompatibleRepositoryError(
            f"{dst_location} is the same repository as {src.backend.location()} "
            f"(id {src.id}): sync copies between two repositories"
        )
    _check_id_keys(src, dst_config, dst_location, password, opened)
    differ = [
        k for k in COMPATIBLE_KEYS if _compared(src.config, k) != _compared(dst_config, k)
    ]
    if differ:
        what = "; ".join(f"{k} {src.config.get(k)} here, {dst_config.get(k)} there" for k in differ)
        raise IncompatibleRepositoryError(
            f"cannot sync {src.backend.location()} into {dst_location}: {what} "
            "(sync into an empty location to make a compatible repository)"
        )


def _compared(config: dict[str, Any], key: str) -> Any:
    value = config.get(key)
    if key == "version" and value in (ENCRYPTED_VERSION, FANOUT_VERSION):
        return 3  # the objects of format 3
    return value


def _check_id_keys(
    src: Repository,
    dst_config: dict[str, Any],
    dst_location: str,
    password: Password,
    opened: Secrets | None,
) -> None:
    """Objects keep their ids across a sync, so both sides must compute ids
    alike.  Data keys may differ: every file is sealed anew at the
    destination under its own (docs/format.md, "Sync")."""
    mine = src.backend.keys.id_key if isinstance(src.backend, EncryptedBackend) else None
    theirs = dst_config.get("encryption")
    if (mine is None) != (theirs is None):
        which = "the source" if mine is not None else "the destination"
        raise IncompatibleRepositoryError(
            f"cannot sync {src.backend.location()} into {dst_location}: only {which} is "
            "encrypted, and an encrypted repository's ids are keyed (sync into an empty "
            "location to make a compatible repository)"
        )
    if mine is None or theirs is None:
        return
    keys = opened
    if keys is None:
        given = password() if callable(password) else password
        if given is None:
            raise WrongPasswordError(f"{dst_location} is encrypted: give its passphrase")
        keys, _slot = unlock(theirs, given, dst_location)
    if keys.id_key != mine:
        raise IncompatibleRepositoryError(
            f"cannot sync {src.backend.location()} into {dst_location}: encrypted under "
            "another id key, so the same objects have other ids there (sync into an empty "
            "location to make a repository that shares the source's keys)"
        )


def read_config(backend: Backend) -> dict[str, Any] | None:
    """A location's repository config, or None if it holds none (read before
    opening it: a destination with the source's id must not be opened with
    the source's catalog)."""
    import json

    try:
        raw = backend.read("config")
    except FileNotFoundError:
        return None
    try:
        config = json.loads(raw)
        if not isinstance(config, dict) or "id" not in config:
            raise ValueError("no id")
    except ValueError as exc:
        raise CorruptionError(f"repository config at {backend.location()} is unreadable") from exc
    return config


def init_like(
    backend: Backend, config: dict[str, Any], password: Password = None
) -> dict[str, Any]:
    """Create an empty repository at ``backend`` with ``config``'s parameters
    and a new id (its catalog is keyed by its id: two repositories of one
    id would share one cache on a machine that holds both), and its empty
    journal, as ``Repository.init`` does -- sealed under the keys
    ``password`` opens when ``config`` is an encrypted repository's."""
    import json

    from coursevault.errors import RepositoryExistsError

    new = {k: v for k, v in config.items() if k not in ("id", "created")}
    new["id"] = secrets.token_hex(16)
    new["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if new.get("version") in (3, ENCRYPTED_VERSION):
        new["version"] = FANOUT_VERSION  # same objects; a new hub's records fan out
    data = json.dumps(new, indent=2, sort_keys=True).encode() + b"\n"
    sealed = sealed_backend(backend, new, password)  # a passphrase that opens it, first
    require_empty(backend)
    if not backend.create("config", data):
        raise RepositoryExistsError(f"a repository already exists at {backend.location()}")
    write_checkpoint(sealed, [], [], fresh=True)
    return new


def compact_first_journal(dst: Repository) -> None:
    """A destination ``init_like`` made, synced: the journal's entries of
    that first sync (one or more a course) made one checkpoint, so that the
    next command reads one file, not every entry.  Under the exclusive
    lock, not waited for: if another process holds the repository, the
    entries stay, each read once by the next command."""
    dst.lock_wait = 0.0
    try:
        with dst.lock(exclusive=True, operation="sync"):
            checkpoint_from_listing(dst)
    except LockHeldError:
        return


@dataclass
class SyncReport:
    """What a sync copied (or, dry, would copy).  ``bytes`` are the bytes of
    packs, index files and snapshots written to the destination;
    ``requests`` the calls made to both backends (set by the API, which
    wraps them in ``CountingBackend``)."""

    source: str = ""
    destination: str = ""
    courses: list[str] = field(default_factory=list)
    snapshots: int = 0
    objects: int = 0
    bytes: int = 0
    blocks_copied: int = 0
    objects_repacked: int = 0
    packs: int = 0
    packs_whole: int = 0
    packs_resumed: int = 0
    index_files: int = 0
    bytes_read: int = 0
    requests: int = 0
    source_requests: int = 0
    destination_requests: int = 0
    initialized: bool = False
    dry_run: bool = False
    refilled: int = 0  # snapshots the destination held, walked by --refill
    notes: list[str] = field(default_factory=list)
    # source snapshots not copied because their records are damaged there
    # (ids): the sync is incomplete, and says so with exit 1
    damaged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _pack_sizes(src: Repository) -> dict[bytes, int]:
    """Every source pack's size (one listing): a sync of everything copies
    a pack whose blocks are all planned whole, as it is."""
    sizes = {}
    for name, size in pack_files(src.backend):
        sizes[bytes.fromhex(name)] = size
    return sizes


def require_courses(src: Repository, courses: list[str] | None) -> None:
    """Refuse a course the source holds no snapshot of -- before the
    destination is created: a refused sync must leave nothing behind."""
    for course in courses or []:
        if not src.catalog.snapshots(course):
            _no_snapshots(src, course)


def _no_snapshots(src: Repository, course: str) -> None:
    """Refuse ``course``: a usage error, unless a damaged record at the
    source may be its (then the repository's damage, exit 1, and the way
    to mend it): "no snapshots" sent the user to look for a typo."""
    damaged = damaged_records(src, [course])
    where = src.backend.location()
    if damaged:
        raise CorruptionError(
            f"no readable snapshots of course {course} in {where}: snapshot record "
            f"{damaged[0][:12]} there is damaged (`coursevault repair refs` restores a "
            "course's last one from its ref)")
    raise BadInputError(f"no snapshots of course {course} in {where}")


def damaged_records(src: Repository, courses: list[str] | None) -> list[str]:
    """The ids of the snapshot records the source's catalog left out as
    damaged that belong to ``courses`` (all if None): those that still name
    one of them, that one's ref names as its newest, or whose id one of its
    snapshots names as its parent -- every record but a forgotten one is
    one of these."""
    if not courses or not src.damaged_records:
        return list(src.damaged_records)
    wanted = set(courses)
    named: set[str] = set()
    for course in courses:
        newest = head_newest(src, course)
        if newest is not None:
            named.add(newest)
        named.update(p for row in src.catalog.snapshots(course)
                     if (p := first_parent(row.record)) is not None)
    return [snap_id for snap_id in src.damaged_records
            if snap_id in named or _course_of_damaged(src, snap_id) in wanted]


def _course_of_damaged(src: Repository, snap_id: str) -> str | None:
    """The course a damaged record still names, if its bytes parse."""
    try:
        record = json.loads(src.backend.read(src.record_key(snap_id)))
    except (OSError, CorruptionError, ValueError):
        return None
    course = record.get(SERIES_FIELD) if isinstance(record, dict) else None
    return course if isinstance(course, str) else None


def _selected(src: Repository, courses: list[str] | None) -> list[SnapshotRow]:
    rows = src.snapshots()
    if not courses:
        return rows
    have = {r.series for r in rows}
    for course in courses:
        if course not in have:
            _no_snapshots(src, course)
    wanted = set(courses)
    return [r for r in rows if r.series in wanted]


def _read_snapshot(src: Repository, snap_id: str) -> bytes:
    try:
        data = read_checked(src.backend, src.record_key(snap_id),
                            lambda d: object_id(ObjectType.SNAPSHOT, d).hex() == snap_id)
    except FileNotFoundError:
        raise ObjectMissingError(snap_id, "no such snapshot at the source") from None
    if object_id(ObjectType.SNAPSHOT, data).hex() != snap_id:
        raise CorruptionError(f"snapshot {snap_id} at the source does not match its hash")
    return data


def sync_repositories(
    src: Repository,
    dst: Repository | None,
    *,
    courses: list[str] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    step: Callable[[str], None] | None = None,
    jobs: int = SYNC_JOBS,
    refill: bool = False,
) -> SyncReport:
    """Copy into ``dst`` what it lacks of the snapshots of ``courses`` (all
    if None) of ``src``; see the module docstring.  ``dst`` is None only for
    a dry run into a location that holds no repository yet."""
    say = step or (lambda _m: None)
    report = SyncReport(
        source=src.backend.location(),
        destination=dst.backend.location() if dst is not None else "",
        courses=sorted(set(courses or [])),
        dry_run=dry_run,
    )
    if dst is None and not dry_run:
        raise BadInputError("sync needs a destination repository")
    if dst is not None:
        keys = dst.backend.keys if isinstance(dst.backend, EncryptedBackend) else None
        check_compatible(src, dst.config, dst.backend.location(), opened=keys)
    locks = [src.lock(exclusive=False, operation="sync (source)", reads_only=True)]
    try:
        if dst is not None and not dry_run:
            locks.append(dst.lock(exclusive=False, operation="sync"))
        _catalogs_as_locked(src, dst, locks)
        _sync(src, dst, courses, report, dry_run, progress, say, locks, jobs, refill)
    except BaseException:
        # the failure is what to report: a service gone down fails the
        # locks' release too, which named DeleteObject locks/... instead
        for lock in reversed(locks):
            with contextlib.suppress(Exception):
                lock.release()
        raise
    for lock in reversed(locks):
        lock.release()
    return report


def _catalogs_as_locked(src: Repository, dst: Repository | None, locks: list[Lock]) -> None:
    """The catalogs brought up to date once both locks are held, as a
    writer's session does (store/session.py): the destination's always,
    the source's if the destination's lock was waited for.

    A lock that waits syncs its own repository's catalog (Repository.lock),
    but the wait for the source's lock left the destination's catalog as it
    was when sync opened it: a forget and prune there meanwhile went unseen,
    and sync skipped objects that prune had deleted and published snapshots
    lacking them (exit 0).  A prune that ran between the opening and the
    lock, without a wait, did the same.  Under the shared locks no prune
    runs on either side.  A stale source catalog costs no data: what it
    names and is gone fails to be read."""
    src_lock, dst_lock = locks[0], locks[1] if len(locks) > 1 else None
    if dst is not None and dst_lock is not None and not dst_lock.waited:
        dst.sync_catalog()
    if dst_lock is not None and dst_lock.waited and not src_lock.waited:
        src.sync_catalog()


def _plan_dictionary(src: Repository, row: SnapshotRow, plan: SyncPlan, report: SyncReport) -> None:
    """What the course's next night at the destination compresses against."""
    dictionary = snapshot_dictionary(row.record)
    if dictionary is not None and src.catalog.has(dictionary):
        try:
            plan.add_dictionary(dictionary, f"the dictionary of snapshot {row.id}")
        except (ObjectMissingError, CorruptionError) as exc:
            report.notes.append(
                f"dictionary of snapshot {row.id} not copied ({exc}): "
                "the course's next night there starts a new chain"
            )


def _refill(
    src: Repository,
    dst: Repository,
    rows: list[SnapshotRow],
    plan: SyncPlan,
    report: SyncReport,
    say: Callable[[str], None],
) -> None:
    """Plan what the destination lacks of the snapshots it already holds
    (``--refill``): each walked whole, against no base, since a snapshot
    published there is taken for complete only while no pack is lost.  The
    index must not name a pack that is gone (``repair packs`` drops those
    entries first): an object it names is taken for stored."""
    listed = {bytes.fromhex(name) for name, _size in pack_files(dst.backend)}
    gone = sorted(dst.catalog.indexed_packs() - listed)
    if gone:
        raise RepositoryError(
            f"{dst.backend.location()}: its index names {len(gone)} missing pack(s) "
            f"({gone[0].hex()[:12]}...): run `coursevault repair packs` there first"
        )
    say(f"walking {len(rows)} snapshots the destination holds")
    for row in rows:
        plan.add_snapshot(bytes.fromhex(row.root), None, f"snapshot {row.id}")
        _plan_dictionary(src, row, plan, report)
    report.refilled = len(rows)


def _sync(
    src: Repository,
    dst: Repository | None,
    courses: list[str] | None,
    report: SyncReport,
    dry_run: bool,
    progress: Progress | None,
    say: Callable[[str], None],
    locks: list[Lock],
    jobs: int = SYNC_JOBS,
    refill: bool = False,
) -> None:
    have = dst.catalog.snapshot_ids() if dst is not None else set()
    selected = _selected(src, courses)
    todo = [r for r in selected if r.id not in have]
    plan = SyncPlan(src, dst, dry_run, whole=not courses)
    sizes = _pack_sizes(src) if not courses else None
    if sizes and plan.whole:
        say(f"reading {len(sizes)} packs")
        prefetch_packs(src, sizes, jobs)
    say(f"walking {len(todo)} snapshots")
    # bases: the roots of snapshots whose closure is complete there or planned
    complete = {r.id: r.root for r in dst.catalog.snapshots()} if dst is not None else {}
    records: list[tuple[SnapshotRow, bytes]] = []
    report.damaged = [s for s in damaged_records(src, courses) if s not in have]
    if refill and dst is not None:
        _refill(src, dst, [r for r in selected if r.id in have], plan, report, say)
    for row in todo:
        try:
            data = _read_snapshot(src, row.id)
        except CorruptionError as exc:  # the others are copied; this one said
            report.damaged.append(row.id)
            report.notes.append(f"snapshot {row.id[:12]} of course {row.series} not copied: {exc}")
            continue
        records.append((row, data))
        parents = row.record.get("parents")
        parent = parents[0] if isinstance(parents, list) and parents else None
        base = complete.get(parent) if isinstance(parent, str) else None
        plan.add_snapshot(
            bytes.fromhex(row.root),
            bytes.fromhex(base) if base else None,
            f"snapshot {row.id}",
        )
        complete[row.id] = row.root
        _plan_dictionary(src, row, plan, report)
    say(f"copying {len(plan.order)} objects")
    config = dst.config if dst is not None else src.config
    Copier(
        plan,
        dst,
        config,
        report,
        dry_run=dry_run,
        progress=progress,
        locks=locks,
        jobs=jobs,
        pack_sizes=sizes,
    ).run()
    say("publishing snapshots")
    by_series: dict[str, list[tuple[str, bytes]]] = {}
    for row, data in records:
        by_series.setdefault(row.series, []).append((row.id, data))
        report.bytes += len(data)
    report.snapshots = len(records)
    if dst is None or dry_run:
        return
    lock_key = locks[-1].key
    for series, snaps in sorted(by_series.items()):
        publish_copied(dst, series, lock_key, snaps)
