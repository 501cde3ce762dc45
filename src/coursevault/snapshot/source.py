"""What ingest stores: a source that names its snapshot before its members.

A write session compresses a night against the dictionary its series' last
night left (docs/format.md, "Dictionaries"), so it must know the series
before the first object is written.  A :class:`Source` therefore gives its
:class:`SourceHead` -- the series key, the time and the fields the snapshot
record keeps of where it came from -- before any member, then its members
one at a time as streams.  The archive source reads ``moodle_backup.xml``
first; a database source (the next door) knows its course and time before
it reads a row.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from coursevault.errors import ArchiveError, BadInputError
from coursevault.history.times import parse_time
from coursevault.moodle2.archive import ArchiveLayout, MemberInfo, first_member, iter_members
from coursevault.moodle2.archiveindex import INDEX_NAME, MAX_HELD_INDEX, listed_bytes
from coursevault.moodle2.backupinfo import BackupInfo, BackupInfoError, read_backup_info
from coursevault.snapshot.labels import COURSE_KEY_CHARS as COURSE_KEY_CHARS
from coursevault.snapshot.labels import source_label as source_label
from coursevault.snapshot.labels import validate_course_key as validate_course_key
from coursevault.store.spool import ScratchSpool

# Bytes of a member a spool holds in memory before it is a file.  4 MiB
# held all of a member that size at the peak of storing it (5 MiB of a
# 4,000-user course's users.xml and assignments); in a file they are the
# page cache's.  Ingest of the generated 100 MB course: the same time,
# peak RSS 65.2 -> 62.0 MB.
SPOOL_IN_MEMORY = 1 << 20
MANIFEST = "moodle_backup.xml"


@dataclass(frozen=True)
class SourceHead:
    """What a snapshot is of, known before its members are read."""

    key: str  # the series the snapshot belongs to
    epoch: float  # its time, seconds since 1970 (UTC)
    fields: dict[str, Any]  # the record's "source": where it came from


class Source(Protocol):
    """A snapshot's content: its head first, then its members.

    ``name`` is how errors name the source (an archive's path as the user
    gave it).  ``members()`` may be iterated once; ``layout`` is complete
    once it is exhausted (a tgz's trailer comes last).
    """

    @property
    def name(self) -> str: ...

    @property
    def head(self) -> SourceHead: ...

    @property
    def layout(self) -> ArchiveLayout: ...

    def members(self) -> Iterator[tuple[MemberInfo, Any]]: ...


# A source may also say ``content_addressed = True``: its ``files/<sha1>``
# members are named by their contents' SHA-1 by construction (a Moodle file
# store), so ingest may take one it stored before without reading it again;
# and ``operation``: the command storing it, as its lock names it to others
# (default "ingest").


class ArchiveSource:
    """A Moodle backup archive (.mbz: tgz or zip) as a :class:`Source`.

    The head is read on construction, from ``moodle_backup.xml`` (spooled,
    to disk past a few MiB); ``course`` and ``when`` override what it says.
    An archive without one, or whose manifest names no course or time that
    the caller did not give, is refused here, before anything is stored.
    """

    def __init__(self, path: str, *, course: str | None = None, when: str | None = None) -> None:
        self.name = path
        self.archive = os.path.basename(path)  # as the snapshot records it
        if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
            # read more than once (kind, manifest, members): a pipe cannot be
            raise ArchiveError(path, "not a regular file (a pipe or a device): ingest reads "
                               "an archive more than once; save it to a file first")
        self._layout, self._members = iter_members(path)
        info = _read_manifest(path)
        try:
            key = validate_course_key(course) if course else _manifest_key(info)
            epoch = parse_time(when) if when else float(info.backup_date)
        except BackupInfoError as exc:
            raise ArchiveError(path, f"{exc} (use --course/--time)", MANIFEST) from None
        self.head = SourceHead(key, epoch, self._fields(info))

    @property
    def layout(self) -> ArchiveLayout:
        return self._layout

    def members(self) -> Iterator[tuple[MemberInfo, Any]]:
        return self._members

    def _fields(self, info: BackupInfo) -> dict[str, Any]:
        f = info.fields
        return {
            "file": self.archive,
            "format": self._layout.format,
            "backup_name": f.get("name", ""),
            "moodle_release": f.get("moodle_release", ""),
            "moodle_version": f.get("moodle_version", ""),
            "backup_release": f.get("backup_release", ""),
            "backup_id": info.backup_id or "",
            "original_course_id": f.get("original_course_id", ""),
            "original_course_shortname": f.get("original_course_shortname", ""),
            "original_site_identifier_hash": f.get("original_site_identifier_hash", ""),
            "original_wwwroot": f.get("original_wwwroot", ""),
        }


def _read_manifest(path: str) -> BackupInfo:
    with first_member(path, MANIFEST) as stream:
        if stream is None:
            raise ArchiveError(path, "no moodle_backup.xml: not a Moodle backup")
        with ScratchSpool(max_size=SPOOL_IN_MEMORY) as spool:
            while block := stream.read(1 << 20):
                spool.write(block)
            spool.seek(0)
            try:
                return read_backup_info(spool)
            except BackupInfoError as exc:
                raise ArchiveError(path, str(exc), MANIFEST) from None


def archive_listed_bytes(path: str) -> int:
    """What ingesting ``path`` reads, from its .ARCHIVE_INDEX (the first
    member of a tgz, a few KiB to inflate); 0 if it has none.  A damaged
    archive is ingest's to report, not this estimate's."""
    try:
        _layout, members = iter_members(path)
        try:
            info, stream = next(members)
            held = info.path == INDEX_NAME and info.size <= MAX_HELD_INDEX
            raw = stream.read() if held else b""
        finally:
            close = getattr(members, "close", None)
            if close is not None:
                close()
    except Exception:  # whatever it is, the ingest that follows reports it properly
        return 0
    listed = listed_bytes(raw) if raw else None
    return len(raw) + listed if listed is not None else 0


def _manifest_key(info: BackupInfo) -> str:
    """The course key moodle_backup.xml gives, held to --course's rules: a
    hostile or odd manifest must not name a ref outside refs/heads/."""
    key = info.course_key
    try:
        return validate_course_key(key)
    except BadInputError as exc:
        raise BackupInfoError(f"its course key: {exc}") from None
