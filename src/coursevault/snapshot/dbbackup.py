"""``backup --db``: courses of a Moodle site, each stored as a snapshot.

One code path for one course and for a site's scheduled run.  Each course is
read inside its own consistent read transaction and stored all or nothing
(ingest's guarantee); a course that cannot be backed up (its data is
inconsistent, a file is unreadable) is reported and the others go on, and
the run then fails -- as ``ingest`` of many archives does.  A site that
cannot be read at all (unreachable, not Moodle, no file store) stops the run
before anything is written.

``skip_unmodified`` skips a course with nothing written to the standard log
store since its last snapshot, as Moodle's scheduled backup's "skip courses
not modified since previous backup" decides it (events with ``crud <>
'r'``), but counting the second the last backup began: Moodle's
``timecreated > laststarttime`` skips a change logged in that second after
its read (whole seconds), and so did this.  A change that logs no event (an
admin's SQL, a plugin that does not log) is missed by both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from coursevault.errors import (
    EXIT_INTERRUPTED,
    BadInputError,
    CoursevaultError,
    SiteDataError,
    SiteError,
    UsageError,
)
from coursevault.moodledb import check_prefix
from coursevault.signals import DeferredSignals
from coursevault.snapshot.ingest import IngestResult, ingest_source
from coursevault.snapshot.labels import validate_course_key
from coursevault.store.repository import Repository

# Decoded blocks a backup keeps (the reader's default is 8 MiB).  What it
# reads is the previous snapshot's upper trees, once, for a walk dictionary
# the local cache lacks, and then a few objects a block (stored documents'
# lengths).  An M course's first night at 4 MiB: 2,570 block decodes, not
# 1,650, the same CPU within noise, 6.5 MB less peak RSS; at 2 MiB: 3,750
# decodes, 0.3-0.5 s (5 %) more CPU, for 3 MB less again.
BACKUP_CACHE_BYTES = 4 << 20
# A SQLite catalog's pages a backup keeps (KiB; 4 MiB otherwise).  It asks
# about each object it stores about once (is it stored already?) and adds
# the new ones at its commit: a big course fills any cache with pages it
# does not read again, a small one never does.
BACKUP_CATALOG_CACHE_KIB = 1024

if TYPE_CHECKING:  # SQLAlchemy and the definitions load when a backup runs, not for
    # every command that merely imports the API (0.18 s of start-up)
    from coursevault.moodledb.site import SiteReader

# (courseid, shortname) -> a context holding progress(tasks done, tasks in all)
CourseProgress = Callable[[int, str], AbstractContextManager[Callable[[int, int], None] | None]]

# what a command line's --no-users / --no-files change in Moodle's settings
Settings = dict[str, bool]


@dataclass
class BackupRequest:
    """What to back up, from which site, with which settings."""

    db_url: str
    dataroot: str
    courses: list[int] = field(default_factory=list)
    all_courses: bool = False
    category: int | None = None
    exclude: list[int] = field(default_factory=list)
    settings: Settings = field(default_factory=dict)
    site: str | None = None
    prefix: str = "mdl_"
    skip_unmodified: bool = False
    # (k, n): only the courses whose id is k-1 modulo n, so n workers split a
    # site without coordinating beyond the repository (and stay on the same
    # courses night after night, each course's history on one worker's cache)
    shard: tuple[int, int] | None = None


@dataclass
class CourseBackup:
    """One course's outcome: stored, skipped (unmodified) or failed."""

    courseid: int
    outcome: str
    key: str = ""
    shortname: str = ""
    seconds: float = 0.0
    result: IngestResult | None = None
    warnings: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def all_warnings(self) -> list[str]:
        """Its warnings and a line for each file whose content in the file
        store does not hash to its contenthash (stored as read): what the
        CLI prints and the run logs -- the log counted only the first kind."""
        misnamed = [] if self.result is None else [
            f"{m['member']}: the file store's content does not hash to its contenthash "
            f"(SHA-1 {m['sha1']}); stored as read" for m in self.result.misnamed_files]
        return [*self.warnings, *misnamed]

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "course_id": self.courseid, "outcome": self.outcome, "course": self.key,
            "shortname": self.shortname, "seconds": round(self.seconds, 3),
            "warnings": self.warnings,
        }
        if self.result is not None:
            data.update(self.result.as_dict())
        if self.error:
            data["error"] = self.error
        return data


class CoursesFailedError(BadInputError):
    """Some courses of a run could not be backed up (each was reported)."""

    def __init__(self, failed: int, total: int) -> None:
        self.failed = failed
        super().__init__(f"{failed} of {total} courses not backed up")


def backup_courses(
    repo: Repository,
    request: BackupRequest,
    *,
    progress: CourseProgress | None = None,
    jobs: int = 1,
) -> Iterator[CourseBackup]:
    """Back up each requested course; yields each outcome as it is known.

    ``jobs`` > 1 backs that many courses up at once, each in a process of
    its own with its own connection and write session (the store takes
    concurrent writers); outcomes then come in the order courses finish,
    without per-course progress."""
    from coursevault.definitions.run import site_info
    from coursevault.moodledb.site import describe, open_engine, read_transaction
    from coursevault.moodledb.sitecheck import check_columns
    from coursevault.snapshot.dbsource import check_dataroot

    check_request(request)
    check_dataroot(request.dataroot)
    engine = open_engine(request.db_url)
    try:
        with read_transaction(engine, request.prefix) as reader:
            # not Moodle, or not a version we know: stop before anything
            request = _with_site(request, site_info(reader).siteidentifier)
            check_columns(reader.conn, request.prefix, describe(engine.url))
            ids = select_courses(reader, request)
        failed = 0
        outcomes = (
            _in_parallel(repo, request, ids, jobs) if jobs > 1 and len(ids) > 1
            else _one_by_one(repo, engine, request, ids, progress)
        )
        for outcome in outcomes:
            failed += outcome.outcome == "failed"
            yield outcome
        if failed:
            if len(ids) == 1:
                raise SiteDataError(f"course {ids[0]}: not backed up")
            raise CoursesFailedError(failed, len(ids))
    finally:
        engine.dispose()


def _one_by_one(
    repo: Repository, engine: Any, request: BackupRequest, ids: list[int],
    progress: CourseProgress | None,
) -> Iterator[CourseBackup]:
    """Each course in turn.  Ctrl-C (or SIGTERM) from a course's commit on
    waits until its outcome is logged and told: the snapshot is stored by
    then, and was logged as an interrupted failure and never named."""
    for courseid in ids:
        held = DeferredSignals()
        try:
            yield _backup_one(repo, engine, request, courseid, progress, held.open)
        finally:
            held.close()


def _with_site(request: BackupRequest, siteidentifier: str) -> BackupRequest:
    """The request with the site part of its course keys resolved, as
    Moodle's backups name a site (the MD5 of its identifier), unless
    ``--site`` gave it: a course whose row cannot be read is logged under
    its key, not ``?-ID`` where ``runs KEY`` never shows it."""
    if request.site is not None:
        return request
    if not siteidentifier:
        raise SiteError("no siteidentifier in the config table: not a Moodle database? "
                        "(--site names the site part of the course keys)")
    from coursevault.structure.context import site_hash

    return replace(request, site=site_hash(siteidentifier))


def check_request(request: BackupRequest) -> None:
    """UsageError for options that contradict each other or a ``site`` no
    course key can start with -- before anything is read.  (``--all
    --course 3`` backed up course 3 alone, ``--category`` without ``--all``
    was ignored, ``--site ''`` was the default site, and ``--site ../x``
    was refused once per course, after connecting.)"""
    check_prefix(request.prefix)
    if request.all_courses and request.courses:
        raise UsageError("--all takes every course: it cannot go with --course")
    if request.category is not None and not request.all_courses:
        raise UsageError("--category narrows --all: use it with --all, not --course")
    if request.site is not None:
        if not request.site:
            raise UsageError("--site is empty: give the site part of the course keys")
        try:
            validate_course_key(f"{request.site}-1")
        except BadInputError:
            raise UsageError(f"--site {request.site!r}: use letters, digits, '.', '_' and '-' "
                             "(not starting with '.')") from None


def select_courses(reader: SiteReader, request: BackupRequest) -> list[int]:
    """The course ids a request names, checked to exist, in id order."""
    if request.courses:
        wanted = sorted(set(request.courses))
        found = {int(str(r["id"])) for r in reader.rows(
            "course", {"id": [str(c) for c in wanted]}, columns=("id",))}
        if 1 in wanted:  # Moodle backs it up as no course either
            raise SiteDataError("course 1 is the site's front page, not a course: Moodle's "
                                "course backup does not take it")
        missing = [c for c in wanted if c not in found]
        if missing:
            raise SiteDataError(f"course {missing[0]}: no such course in the database")
        kept = [c for c in wanted if c not in request.exclude]
        if not kept:
            raise UsageError("--exclude leaves none of the courses --course names")
        return _sharded(kept, request.shard)
    if not request.all_courses:
        raise BadInputError("name courses with --course ID, or use --all")
    where: dict[str, Any] = {}
    if request.category is not None:
        cats = _category_and_below(reader, request.category)
        where["category"] = [str(c) for c in cats]
    ids = sorted(int(str(r["id"])) for r in reader.rows("course", where, columns=("id",)))
    return _sharded([c for c in ids if c != 1 and c not in request.exclude], request.shard)


def _sharded(ids: list[int], shard: tuple[int, int] | None) -> list[int]:
    if shard is None:
        return ids
    k, n = shard
    return [c for c in ids if c % n == k - 1]


def _category_and_below(reader: SiteReader, category: int) -> list[int]:
    top = reader.one("course_categories", {"id": str(category)})
    if top is None:
        raise SiteDataError(f"category {category}: no such category in the database")
    path = str(top["path"])
    return [
        int(str(r["id"])) for r in reader.rows("course_categories", columns=("id", "path"))
        if str(r["path"]) == path or str(r["path"]).startswith(path + "/")
    ]


def _backup_one(
    repo: Repository,
    engine: Any,
    request: BackupRequest,
    courseid: int,
    progress: CourseProgress | None,
    on_commit: Callable[[], None] | None = None,
) -> CourseBackup:
    from coursevault.definitions.run import start_run
    from coursevault.moodledb.site import read_transaction
    from coursevault.snapshot.dbsource import DatabaseSource, course_key

    started = time.time()
    outcome = CourseBackup(courseid, "failed")
    try:
        with read_transaction(engine, request.prefix, site_checked=True) as reader:
            run = start_run(reader, courseid, request.settings)
            run.dataroot = request.dataroot
            run.started = int(started)  # the snapshot's time is the backup's
            outcome.key = course_key(run, request.site)
            outcome.shortname = str(run.course["shortname"])
            if request.skip_unmodified and _unmodified(repo, reader, outcome.key, courseid,
                                                       run.settings):
                outcome.outcome = "skipped"
                return outcome
            bar_context = (
                progress(courseid, outcome.shortname) if progress is not None else nullcontext(None)
            )
            with bar_context as bar:
                tasks = None if bar is None else _task_progress(bar)
                # its time in whole seconds, as an archive's backup_date: its
                # export ingested again is then the same time, filed after it
                source = DatabaseSource(run, site=request.site, when=int(started),
                                        progress=tasks)
                # what the backup reads back is a few objects a block (ObjectReads.learn_blocks)
                repo.learn_blocks = False
                repo.cache_bytes = min(repo.cache_bytes, BACKUP_CACHE_BYTES)
                repo.keep_catalog_pages(BACKUP_CATALOG_CACHE_KIB)
                outcome.result = ingest_source(repo, source, on_commit=on_commit)
            outcome.warnings = list(run.warnings)
            outcome.outcome = "stored"
    except SiteDataError as exc:
        outcome.error = str(exc)
    except CoursevaultError as exc:
        outcome.error = str(exc)  # in runs too when it ends the run (a site error)
        if not isinstance(exc, BadInputError):
            raise
    except KeyboardInterrupt:
        outcome.error = "interrupted"
        raise
    except Exception as exc:
        outcome.error = f"internal error: {type(exc).__name__}: {exc}"
        raise
    finally:
        outcome.seconds = time.time() - started
        if not outcome.key and request.site:
            outcome.key = f"{request.site}-{courseid}"
        _log_run(repo, outcome, started)
    return outcome


def _log_run(repo: Repository, outcome: CourseBackup, started: float) -> None:
    """Every run is logged, failed and skipped ones too (``coursevault runs``)."""
    result = outcome.result
    repo.record_run({
        "id": uuid.uuid4().hex,
        "course": outcome.key or f"?-{outcome.courseid}",
        "source": f"database course {outcome.courseid}"
                  + (f" ({outcome.shortname})" if outcome.shortname else ""),
        "snapshot": result.snapshot if result is not None else "",
        "started": started,
        "seconds": outcome.seconds,
        "new_bytes": result.new_bytes if result is not None else 0,
        "new_objects": result.new_objects if result is not None else 0,
        "outcome": outcome.outcome,
        "error": outcome.error or warned(outcome.all_warnings),
    })


def warned(warnings: list[str]) -> str:
    """A stored course's warnings as its run logs them: how many, then the
    first.  A dataroot that is not the site's stores a course without one
    file ("Missing file in pool", as Moodle's backup goes on), and the
    run's row said only "stored"."""
    if not warnings:
        return ""
    count = f"{len(warnings)} warning{'s' if len(warnings) > 1 else ''}"
    return f"{count}; the first: {warnings[0]}"


def _in_parallel(
    repo: Repository, request: BackupRequest, ids: list[int], jobs: int
) -> Iterator[CourseBackup]:
    """Courses backed up by ``jobs`` worker processes, yielded as they end.

    When the run ends early -- a site error in one course, Ctrl-C, the
    reader of the outcomes gone -- no queued course starts: the pool's
    ``with`` block used to wait for every one of them, which stored a site's
    remaining courses after the error and reported none.  On an interrupt
    the workers are interrupted too (a course cut short leaves what any
    killed writer leaves: nothing a snapshot names); after an error the
    courses already running finish and are yielded before it is raised.
    Every course is in ``runs`` either way."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import active_children, get_context

    args = repo.open_args()
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=get_context("spawn"),
        initializer=_start_worker, initargs=(os.getpid(),),
    )
    futures = []
    told: set[Any] = set()
    try:
        futures = submit_all(pool, _worker, [(args, request, courseid) for courseid in ids])
        for future in as_completed(futures):
            told.add(future)
            yield future.result()
    except BaseException as exc:
        for future in futures:
            future.cancel()
        if isinstance(exc, KeyboardInterrupt):
            for child in active_children():  # the pool's workers: none else is ours
                if child.pid:  # (never 0: that would be our own process group)
                    with contextlib.suppress(OSError):
                        os.kill(child.pid, signal.SIGINT)
        elif isinstance(exc, Exception):  # the courses that were running, told too
            for future in futures:
                if future in told or future.cancelled() or future.exception() is not None:
                    continue
                told.add(future)
                yield future.result()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def submit_all(pool: Any, fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> list[Any]:
    """``fn`` queued on ``pool`` once per argument tuple.  A spawning pool
    starts its workers here; they start ignoring Ctrl-C, as this process
    does for these milliseconds, until their initializer takes it
    (_start_worker): Ctrl-C to the terminal's process group reached a
    worker still importing and printed its traceback."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return [pool.submit(fn, *call) for call in calls]
    finally:
        signal.signal(signal.SIGINT, previous)


# How often a worker looks whether the process that started it still runs.
PARENT_POLL_SECONDS = 0.5


def _start_worker(parent: int) -> None:
    """A worker's set-up: watch its parent, and take Ctrl-C quietly."""
    _watch_parent(parent)
    signal.signal(signal.SIGINT, _interrupted)


# True while a worker backs a course up: Ctrl-C then stops the course (as in
# a one-process run: its write session cleans up); between courses, it ends
# the worker without the traceback of a queue read cut short.
_IN_COURSE = False


def _interrupted(_signum: int, _frame: object) -> None:
    if _IN_COURSE:
        # once: Ctrl-C reaches a worker twice (from the terminal and from
        # the parent), and the second, raised while the first unwinds,
        # printed "Exception ignored in ..." with a traceback
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt
    os._exit(EXIT_INTERRUPTED)


def _watch_parent(parent: int) -> None:
    """End this worker when the backup that started it is gone.

    A parent killed (SIGKILL, SIGTERM, an OOM kill) leaves its workers
    waiting on the pool's queue forever: each holds the queue's write end
    itself, so no end-of-file reaches them.  A worker killed mid-course
    leaves what any killed writer leaves -- nothing a snapshot names."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(EXIT_INTERRUPTED)

    threading.Thread(target=watch, name="coursevault-parent-watch", daemon=True).start()


# A worker process's repository handle and engine, opened for its first course
# and kept for the next ones (see _worker).
_WORKER_OPEN: dict[str, Any] = {}


def _worker(open_args: dict[str, Any], request: BackupRequest, courseid: int) -> CourseBackup:
    """One course in a worker process, with the repository handle and engine
    the worker opened for its first course.

    Kept, not opened per course, as ``jobs`` = 1 keeps them: opening took a
    new PostgreSQL connection (whose backend then loads its catalog entries
    for every table the course reads, again), the dialect's first queries
    and the catalog's schema check -- per course of a site's night.  Keeping
    them changes nothing a course sees: the handle's own caches hold
    content-addressed objects, the catalog is the same shared database
    either way (opened without a sync, as before), and each course still
    has its own read transaction and write session.  A failed open raises
    here, as before, and the next course tries again; the worker closes
    both as it exits.
    """
    key = repr((open_args["backend"].location(), str(open_args["cache_dir"]),
                open_args["catalog_url"], request.db_url))
    held = _WORKER_OPEN.get(key)
    if held is None:
        from multiprocessing.util import Finalize

        from coursevault.moodledb.site import open_engine

        repo = Repository.open(open_args["backend"], cache_dir=open_args["cache_dir"],
                               catalog_url=open_args["catalog_url"], sync=False)
        try:
            engine = open_engine(request.db_url)
        except BaseException:
            repo.close()
            raise
        held = _WORKER_OPEN[key] = {"repo": repo, "engine": engine}
        Finalize(None, _close_worker, args=(key,), exitpriority=0)
    global _IN_COURSE
    _IN_COURSE = True
    commit = DeferredSignals()  # from its commit on, the course is logged as stored
    try:
        return _backup_one(held["repo"], held["engine"], request, courseid, None, commit.open)
    finally:
        commit.close()
        _IN_COURSE = False


def _close_worker(key: str) -> None:
    held = _WORKER_OPEN.pop(key, None)
    if held is not None:
        held["engine"].dispose()
        held["repo"].close()


def _task_progress(bar: Callable[[int, int], None]) -> Callable[[str, int, int], None]:
    return lambda _task, done, total: bar(done, total)


def _unmodified(repo: Repository, reader: SiteReader, key: str, courseid: int,
                settings: Mapping[str, bool]) -> bool:
    """True if the course's last snapshot is a database backup with these
    settings and the log store holds no changing event since it.  (A last
    snapshot without files or users, or an ingested archive, is no backup
    of what is asked: skipping on it would leave the course without one.)"""
    snaps = repo.snapshots(key)
    if not snaps:
        return False
    source = snaps[-1].record.get("source") or {}
    if not source.get("database") or source.get("settings") != dict(settings):
        return False
    # a backup's epoch is the second it began (whole): an event logged in
    # that second may have come after its read, so it counts
    since = int(snaps[-1].epoch)
    for _row in reader.sql(
        "SELECT id FROM {logstore_standard_log} WHERE courseid = ? AND timecreated >= ? "
        "AND crud <> 'r'", [courseid, since]
    ):
        return False
    return True
