"""``restore --db``: a snapshot of either door straight into a Moodle database.

All or nothing: every row is written in one transaction, file contents are
staged in the site's temp folder and moved into its file store only when
everything else has been written, just before the commit; any error (a
constraint the site enforces, a full disk, an interrupt) rolls the
transaction back and removes what was moved in.  A process killed between
the move and the commit leaves a journal the next restore reads
(``filedir.recover``): contents no ``files`` row names are removed.  A
commit that fails may have happened all the same (the connection lost as
the server commits): a new connection looks for a row it wrote before
anything is removed.
tests/dbrestore/test_atomic.py fails every step of a restore in turn.
``--dry-run`` runs the same restore against a writer that writes nothing
(ids are placeholders) and reports what would be created and matched --
and, with ``--replace``, deleted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from coursevault import allocator
from coursevault.errors import BadInputError, UsageError
from coursevault.moodle2.archiveindex import render_archive_index
from coursevault.moodledb import check_prefix
from coursevault.restore.export import write_content
from coursevault.store.catalog import SnapshotRow
from coursevault.store.repository import Repository
from coursevault.tree.archive_tree import ArchiveIndex, iter_member

if TYPE_CHECKING:
    from coursevault.definitions.restore_plan import RestoreReport
    from coursevault.moodledb.filedir import Staging
    from coursevault.moodledb.sitewriter import SiteWriter


# the last time Moodle's 10-digit time columns hold (XMLDB int(10))
LAST_MOODLE_TIME = 9_999_999_999
RESTORE_CACHE_BYTES = 3 * 1024 * 1024
# of which decoded blocks: one (a block is up to 1 MiB), as the objects
# learned from it are kept apart (store/objects.py)
RESTORE_BLOCK_CACHE_BYTES = 1024 * 1024
# a SQLite catalog's pages kept by a restore (KiB; 4 MiB otherwise): it
# looks each object up about once, so a big repository's catalog filled
# the cache and a small one's did not (an M course 0.7 MB more than an S
# course), for no hits; 512 KiB costs an M restore no measurable CPU
RESTORE_CATALOG_CACHE_KIB = 512


@dataclass
class RestoreRequest:
    selector: str
    db_url: str
    dataroot: str
    category: int | None = None
    shortname: str | None = None
    fullname: str | None = None
    users: bool = True
    dry_run: bool = False
    prefix: str = "mdl_"
    into: int | None = None
    replace: bool = False  # with into: delete the course's content first
    only: tuple[str, ...] = ()
    start_date: int | None = None


class SnapshotMembers:
    """A snapshot's members, read from the store as the restore asks.

    The member list is an :class:`ArchiveIndex` (paths and node ids, not
    every member's entry: what grew a restore's memory with the course),
    and a member's XML is written into a buffer of its known size rather
    than gathered in pieces and joined (twice a 1.5 MB users.xml at once);
    the members that grow with the course (an activity's own, its grades,
    users.xml) are parsed from :meth:`stream` as they are rendered.
    """

    def __init__(self, repo: Repository, tree: ArchiveIndex) -> None:
        self.repo = repo
        self.tree = tree

    def exists(self, path: str) -> bool:
        member = self.tree.find(path)
        return member is not None and not member.is_dir

    def folders(self, path: str) -> list[str]:
        """Names of the folders right under ``path`` (a course's blocks), in
        archive order."""
        return self.tree.folders(path)

    def xml(self, path: str) -> bytes | None:
        member = self.tree.find(path)
        if member is None or member.is_dir:
            return None
        out = _Filled(member.size)
        write_content(self.repo.get, self.tree, member, out.write)
        return out.value()

    def stream(self, path: str) -> Iterator[bytes] | None:
        """A member's bytes in pieces rendered as they are taken (a member
        parsed as it is read is never whole in memory), or None."""
        member = self.tree.find(path)
        if member is None or member.is_dir:
            return None
        return iter_member(self.repo.get, self.tree, member, render_archive_index)

    def copy(self, path: str, out: BinaryIO) -> None:
        member = self.tree.find(path)
        if member is None:
            raise BadInputError(f"the snapshot has no member {path}")
        write_content(self.repo.get, self.tree, member, out.write)


class _Filled:
    """Bytes written into one buffer of the size they are said to have
    (written past it, they go on growing it)."""

    def __init__(self, size: int) -> None:
        self._buf = bytearray(size)
        self._n = 0

    def write(self, piece: bytes) -> None:
        end = self._n + len(piece)
        self._buf[self._n:end] = piece
        self._n = end

    def value(self) -> bytes:
        if self._n != len(self._buf):
            del self._buf[self._n:]
        return bytes(self._buf)


def _check_name(option: str, name: str | None) -> None:
    """UsageError for a course name no Moodle course should have: empty or
    blank (an empty one was taken as none, spaces made a course named so),
    a line break or other control character, or bytes that are not UTF-8
    (an internal UnicodeEncodeError, after a dry run that said yes)."""
    if name is None:
        return
    if not name.strip():
        raise UsageError(f"{option} is empty: give the new course's name")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{option} is not UTF-8 text") from None
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UsageError(f"{option} {name!r} holds a line break or control character")


def restore_snapshot(repo: Repository, snap: SnapshotRow, request: RestoreRequest,
                     window: CommitWindow | None = None) -> dict[str, Any]:
    """Restore the snapshot as a new course or into an existing one; the
    report as a dict.  A caller that passes ``window`` closes it itself,
    after it has reported the restore (Ctrl-C meanwhile is noted, not
    raised: the CLI prints the report first)."""
    from coursevault.moodledb.connect import open_engine, translated_errors

    if request.replace and (request.into is None or request.only):
        raise UsageError("--replace goes with --into COURSEID, and restores the whole "
                         "backup (no --only)")
    if request.into is not None:
        named = [option for option, value in (
            ("--shortname", request.shortname), ("--fullname", request.fullname),
            ("--category", request.category)) if value is not None]
        if named:  # they were ignored: the course keeps its names and category
            raise UsageError(f"{' and '.join(named)} {'name' if len(named) > 1 else 'names'} "
                             f"a new course: --into restores into course {request.into} "
                             "as it is named and placed")
    for option, name in (("--shortname", request.shortname), ("--fullname", request.fullname)):
        _check_name(option, name)
    check_prefix(request.prefix)
    if request.start_date is not None and not 0 <= request.start_date <= LAST_MOODLE_TIME:
        raise UsageError(f"--start-date {request.start_date}: Moodle's times are 0 to "
                         f"{LAST_MOODLE_TIME} (10 digits: 2286-11-20)")
    started = time.monotonic()
    allocator.for_restore()
    # members are read once each, in about the order they are stored: a
    # smaller cache of blocks reads them almost as fast (an M course: 3 MiB
    # costs 0.4 s of CPU in 12 and saves 18 MB; 2 MiB costs 1.5 s)
    repo.cache_bytes = min(repo.cache_bytes, RESTORE_CACHE_BYTES)
    repo.block_cache_bytes = RESTORE_BLOCK_CACHE_BYTES
    repo.keep_catalog_pages(RESTORE_CATALOG_CACHE_KIB)
    owned = window is None
    window = window or CommitWindow()
    try:
        with repo.lock(exclusive=False, operation="restore", reads_only=True):
            index = ArchiveIndex(repo.get, bytes.fromhex(snap.root))
            engine = open_engine(request.db_url, existing=True)
            try:
                with translated_errors(engine, request.prefix):
                    report = _run(engine, SnapshotMembers(repo, index), request, window)
            finally:
                engine.dispose()
                index.close()
        out = report.as_dict()
    finally:
        if owned or not window.opened:
            window.close()
    if window.interrupted:
        out["warnings"].append(f"{window.interrupted} came as the restore committed, too late "
                               "to undo it: the course is restored")
    out.update(snapshot=snap.id, course_key=snap.series, dry_run=request.dry_run,
               seconds=round(time.monotonic() - started, 3))
    return out


class CommitWindow:
    """From the commit on, an interrupt cannot undo the restore: Ctrl-C
    there is noted, not raised, until the restore has returned its report
    -- else the command would exit 130 with the course restored, and a
    user who believed it would restore it a second time.  So is SIGTERM,
    which the CLI turns into the same interrupt (it exited 143 with the
    course restored).  Before the commit, either rolls everything back as
    any error does.  ``interrupted`` names the signal noted ("Ctrl-C",
    "SIGTERM"), or is empty.  (Python runs signal handlers in the main
    thread only: elsewhere this does nothing.)"""

    def __init__(self) -> None:
        self.interrupted = ""
        self._previous: dict[int, Any] = {}
        self._open = False

    def open(self) -> None:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._note)
            self._open = True

    @property
    def opened(self) -> bool:
        """Whether the commit began (and Ctrl-C is noted)."""
        return self._open

    def _note(self, signum: int, _frame: Any) -> None:
        import signal

        self.interrupted = self.interrupted or (
            "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C")

    def close(self) -> None:
        import signal

        if self._open:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            self._previous = {}
            self._open = False


def _run(engine: Any, members: SnapshotMembers, request: RestoreRequest,
         window: CommitWindow) -> RestoreReport:
    from coursevault.definitions.restore_plan import RestoreOptions, restore_course_backup
    from coursevault.moodledb.connect import writing
    from coursevault.moodledb.filedir import Staging, recover, require_file_store
    from coursevault.moodledb.sitewriter import SiteWriter

    options = RestoreOptions(category=request.category, shortname=request.shortname,
                             fullname=request.fullname, users=request.users,
                             now=int(time.time()), into=request.into,
                             replace=request.replace, only=request.only,
                             start_date=request.start_date)
    require_file_store(request.dataroot)
    staging = Staging(request.dataroot, dry_run=request.dry_run)
    with engine.connect() as conn:
        if not request.dry_run:
            recover(request.dataroot, lambda hashes: _named(conn, request.prefix, hashes),
                    lambda session: _session_alive(conn, session))
        # a dry run writes nothing: it need not hold SQLite's write lock
        with (conn if request.dry_run else writing(conn)).begin() as tx:
            staging.db_session = _session_id(conn)
            writer = SiteWriter(conn, request.prefix, dry_run=request.dry_run)
            if request.dry_run:  # it writes nothing: what it would, counted
                report = restore_course_backup(writer, members, options, staging)
                tx.rollback()
                return report
            _one_restore_at_a_time(conn, request.prefix)
            try:
                report = restore_course_backup(writer, members, options, staging)
                writer.flush()  # the rows it still keeps, before contents go in
                staging.publish()
            except BaseException:
                staging.rollback()
                raise
            window.open()
            try:
                tx.commit()
            except BaseException as exc:
                if not _committed_after_all(engine, request.prefix, writer, staging, report,
                                            exc):
                    raise
                return report  # the connection cannot say which contents are named
        staging.discard()
        _trash_released(conn, request, report)
    return report


# The server's id of a connection, and how to see whether it still runs:
# a restore killed while the server commits its transaction leaves the
# server committing (filedir.recover waits for it).  SQLite has no
# server: a killed writer's transaction is rolled back by the next.
_SESSION_SQL = {
    "postgresql": ("SELECT pg_backend_pid()", "SELECT 1 FROM pg_stat_activity WHERE pid = :id"),
    "mysql": ("SELECT CONNECTION_ID()", "SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = :id"),
}


def _one_restore_at_a_time(conn: Any, prefix: str) -> None:
    """Wait for any other restore into the site to end, before this one reads
    what it needs to choose (a new course's short name made unique, ids,
    sort orders): three restores at once of one backup all named their
    course rich_3.  A lock on the site identifier's config row -- every
    Moodle has it, nothing rewrites it -- is held by the transaction until
    it ends, on PostgreSQL and MariaDB alike; SQLite's write lock, taken as
    the transaction begins (``connect.writing``), already does this.  Taken
    before any table is read: MariaDB's repeatable-read snapshot starts at
    the first plain read, so it then holds the other restore's course; on
    PostgreSQL each statement sees what was committed before it."""
    if conn.dialect.name == "sqlite":
        return
    import sqlalchemy as sa

    conn.execute(sa.text(f"SELECT id FROM {prefix}config WHERE name = 'siteidentifier' "
                         "FOR UPDATE"))


def _session_id(conn: Any) -> str | None:
    import sqlalchemy as sa

    name = "mysql" if conn.dialect.name == "mariadb" else conn.dialect.name
    sql = _SESSION_SQL.get(name)
    if sql is None:
        return None
    return f"{name}:{conn.execute(sa.text(sql[0])).scalar()}"


def _session_alive(conn: Any, session: str) -> bool:
    import sqlalchemy as sa

    name, _, ident = session.partition(":")
    sql = _SESSION_SQL.get(name)
    if sql is None or not ident.isdigit():
        return False
    here = "mysql" if conn.dialect.name == "mariadb" else conn.dialect.name
    if here != name:
        return False  # another database's session: nothing to wait for here
    found = conn.execute(sa.text(sql[1]), {"id": int(ident)}).first() is not None
    conn.commit()  # as _named: the restore's own transaction begins after
    return found


def _trash_released(conn: Any, request: RestoreRequest, report: RestoreReport) -> None:
    """``--replace``, committed: the deleted files' contents no row names
    any more go to Moodle's trash folder (filedir.trash_unnamed); a failure
    there leaves them in the file store, said in a warning."""
    from coursevault.moodledb.filedir import trash_unnamed

    if not report.released:
        return
    try:
        report.files["trashed"] = trash_unnamed(
            request.dataroot, report.released, lambda h: _named(conn, request.prefix, h))
    except Exception as exc:  # the restore is committed: a warning, not a failure
        said = (str(exc).splitlines() or [type(exc).__name__])[0]
        report.warnings.append(f"contents of the deleted files stay in the file store: {said}")


def _committed_after_all(engine: Any, prefix: str, writer: SiteWriter, staging: Staging,
                         report: RestoreReport, exc: BaseException) -> bool:
    """The commit failed -- or did it?  A connection lost while the server
    commits leaves the client unable to tell, and removing the contents
    committed rows name would break the course.  With contents moved in,
    a new connection looks for the last ``files`` row this transaction
    wrote (id and content hash; a restore into an existing course leaves no
    new course to look for): there, the restore happened (the contents stay;
    an interrupt is still raised); not there, the moved contents are
    removed; if the database cannot say, they are left with their journal
    for the next restore's ``recover``, which keeps those a row names."""
    import sqlalchemy as sa

    row_id = writer.last_ids.get("files")
    if not staging.published or row_id is None:
        staging.rollback()  # nothing in filedir depends on the outcome
        return False
    try:
        with engine.connect() as conn:
            found = conn.execute(sa.text(
                f"SELECT contenthash FROM {prefix}files WHERE id = :id"), {"id": row_id}).scalar()
    except Exception:
        return False  # unknown: the staging folder stays for recover
    if found is None or str(found) not in staging.staged:
        staging.rollback()
        return False
    staging.discard()
    said = (str(exc).splitlines() or [type(exc).__name__])[0]
    report.warnings.append(f"the database reported an error as it committed ({said}), "
                           "but what it wrote is in the site: restored")
    return isinstance(exc, Exception)


def _named(conn: Any, prefix: str, hashes: Any) -> set[str]:
    import sqlalchemy as sa

    wanted = list(hashes)
    if not wanted:
        return set()
    rows = conn.execute(sa.text(f"SELECT DISTINCT contenthash FROM {prefix}files "
                                "WHERE contenthash IN :h").bindparams(
        sa.bindparam("h", expanding=True)), {"h": wanted})
    found = {str(r[0]) for r in rows}
    conn.commit()
    return found
