"""A course read from a Moodle database, as a :class:`Source`.

The members are what Moodle's own backup of the course holds, made by the
definitions (coursevault/definitions) from one consistent read of the
database and the site's file store, laid out as Moodle's tgz lays them out:
``.ARCHIVE_INDEX`` first, each folder before what it holds.  Since the index
lists every member's size, members are made first and spooled to a temporary
file, then handed on one at a time, each read from that file as ingest reads
it; file contents are streamed from the file store when ingest reads them.

The snapshot joins the series of Moodle's own backups of the same course:
its key is ``<md5 of the site identifier>-<course id>``, as ingest names an
archive's course from its ``original_site_identifier_hash``, so a diff
between an ingested Moodle backup and a database backup of the same course
compares like with like.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import IO, Any

from coursevault.allocator import Trimmer
from coursevault.definitions.run import course_members
from coursevault.errors import SiteDataError, SiteError
from coursevault.moodle2.archive import ArchiveLayout, MemberInfo
from coursevault.moodle2.archiveindex import INDEX_NAME, render_archive_index
from coursevault.snapshot.source import SourceHead, validate_course_key
from coursevault.store.spool import RecordSpool, ScratchFile
from coursevault.structure.context import BackupRun, site_hash
from coursevault.structure.plan import FileRef, Progress, Spooled

DIR_MTIME = 1356998400  # what Moodle's tgz packer gives folders and the index
TRIM_EVERY = 4 << 20  # bytes of members stored between handing free pages back (allocator)


def course_key(run: BackupRun, site: str | None = None) -> str:
    """``<site>-<course id>``; the site defaults to what Moodle's backups name it."""
    ident = site or site_hash(run.site.siteidentifier)
    return validate_course_key(f"{ident}-{run.course['id']}")


def check_dataroot(dataroot: str) -> str:
    """The dataroot's file store, or SiteError naming what is wrong."""
    filedir = os.path.join(dataroot, "filedir")
    if not os.path.isdir(dataroot):
        raise SiteError(f"dataroot {dataroot}: no such folder")
    if not os.path.isdir(filedir):
        raise SiteError(f"dataroot {dataroot}: no filedir/ folder: not a Moodle dataroot")
    if not os.access(filedir, os.R_OK | os.X_OK):
        raise SiteError(f"dataroot {dataroot}: filedir/ is not readable (permission denied)")
    return filedir


class DatabaseSource:
    """One course's backup from the database; see the module docstring."""

    # files/<sha1> come from Moodle's content-addressed file store (source.py)
    content_addressed = True
    operation = "backup"  # its lock's name: `backup --db`, not an ingest

    def __init__(
        self,
        run: BackupRun,
        *,
        site: str | None = None,
        when: float,
        progress: Progress | None = None,
    ) -> None:
        self.run = run
        course = run.course
        self.name = f"course {course['id']} ({course['shortname']})"
        self._layout = ArchiveLayout("tgz")
        self._progress = progress
        self._mtime = int(when)
        self.head = SourceHead(course_key(run, site), when, self._fields())

    @property
    def layout(self) -> ArchiveLayout:
        return self._layout

    def _fields(self) -> dict[str, Any]:
        site, course = self.run.site, self.run.course
        return {
            "database": True,
            "format": "tgz",
            "moodle_release": site.release,
            "moodle_version": site.version,
            "backup_release": site.backup_release,
            "original_course_id": str(course["id"]),
            "original_course_shortname": str(course["shortname"]),
            "original_site_identifier_hash": site_hash(site.siteidentifier),
            "original_wwwroot": site.wwwroot,
            "settings": {k: v for k, v in sorted(self.run.settings.items())},
        }

    def members(self) -> Iterator[tuple[MemberInfo, Any]]:
        seen_dirs: set[str] = set()
        # One spool for every member made: the index must come first, so all
        # are made before any is handed on.  On disk from the first byte: a
        # spool in memory up to 8 MiB held a small course's XML whole, and a
        # course of 1,000 users and 300 activities (130 MB of XML) first
        # filled it and then copied it out at once -- 8 MiB and a copy of
        # it at the peak of making the members, memory a small course never
        # needs (issue 21: peak RSS flat from S to M).  The list of members
        # made waits on disk too (``_made``): held, 460 bytes a member.
        with (
            ScratchFile(prefix="coursevault-course-") as spool,
            RecordSpool("coursevault-made-") as made,
        ):
            # rendered members are written into the spool as they are made:
            # never whole in memory (plan.execute)
            for path, data in course_members(self.run, self._progress, spool):
                for folder in _folders(path):
                    if folder not in seen_dirs:
                        seen_dirs.add(folder)
                        made.append((folder, True, 0, DIR_MTIME, None))
                made.append(self._member(path, data))
            self.run.release()  # all made: storing them is the peak (BackupRun.release)
            trimmer = Trimmer(TRIM_EVERY)
            trimmer.trim()  # what making them freed
            index = render_archive_index(record[:4] for record in made)
            yield MemberInfo(INDEX_NAME, False, len(index), DIR_MTIME), io.BytesIO(index)
            for name, is_dir, size, mtime, payload in made:
                member = MemberInfo(name, is_dir, size, mtime)
                trimmer.add(size)  # what storing the members before freed
                if payload is None:
                    yield member, io.BytesIO(b"")
                elif len(payload) == 3:
                    with _open_file(FileRef(*payload)) as stream:
                        yield member, stream
                else:
                    yield member, _SpoolSlice(spool, *payload)

    def _member(self, path: str, data: bytes | FileRef | Spooled) -> tuple[Any, ...]:
        """The record of a member made: name, folder or not, size, time and
        where its bytes are -- (path, contenthash, size) of a file of the
        file store, (offset, length) in the spool."""
        if isinstance(data, FileRef):
            return path, False, data.size, self._mtime, (data.path, data.contenthash, data.size)
        if not isinstance(data, Spooled):  # course_members was handed the spool
            raise TypeError(f"{path}: a member not in the spool")
        return path, False, data.length, self._mtime, (data.offset, data.length)


class _SpoolSlice:
    """One member's bytes in the spool, read as ingest asks for them.

    Not a ``BytesIO`` of the member: that copy is the member's whole size
    (users.xml of 1,000 users is 1.6 MB) on top of what ingest buffers of
    it.  Each read seeks, so the slice owes nothing to where the spool was
    left; ingest reads one member to its end before asking for the next."""

    def __init__(self, spool: ScratchFile, offset: int, length: int) -> None:
        self._spool = spool
        self._at = offset
        self._end = offset + length

    def read(self, n: int = -1, /) -> bytes:
        left = self._end - self._at
        if n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        self._spool.seek(self._at)
        data = self._spool.read(n)
        self._at += len(data)
        return data


def _folders(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _open_file(ref: FileRef) -> IO[bytes]:
    try:
        return io.BufferedReader(_StoreFile(ref.path))
    except OSError as exc:
        raise SiteDataError(f"file store: {ref.path}: {exc.strerror}") from None


class _StoreFile(io.FileIO):
    """A file of the site's file store whose read errors (EIO: a failing
    disk, a network mount gone) fail the course that holds it, naming the
    file, not an internal error: the other courses of a run go on."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "rb")
        self._path = path

    def readinto(self, buffer: Any) -> int | None:
        try:
            return super().readinto(buffer)
        except OSError as exc:
            raise SiteDataError(f"file store: {self._path}: {exc.strerror or exc}") from None

    def readall(self) -> bytes:
        try:
            return super().readall()
        except OSError as exc:
            raise SiteDataError(f"file store: {self._path}: {exc.strerror or exc}") from None
