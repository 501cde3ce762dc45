"""The members an ingest has stored, kept in a temporary file until its commit.

The archive's tree lists every member's entry and content, in archive order,
and their times; and ``.ARCHIVE_INDEX`` is compared with what all of them
regenerate.  So every member stored is needed once more at commit, after the
last one.  Held in memory -- a ``MemberInfo``, its entry dict and its
content's id, about 570 bytes a member -- a database backup of a demo course
of 13,000 members kept 7.5 MB until its commit, growing with the course.
Here each member is one record appended as it is stored, its entry already
encoded as its tree will hold it, and read back at commit a record at a time.

The ``.ARCHIVE_INDEX`` of a tar archive is the exception: whether it is kept
as bytes or regenerated is decided at commit, so its entry stays in memory
(one member) and its record is a placeholder for its place and time.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, NamedTuple

from coursevault.moodle2.archive import MemberInfo
from coursevault.store.ids import ObjectId
from coursevault.store.spool import RecordSpool
from coursevault.tree.nodes import encode_member


class StoredMember(NamedTuple):
    """One member as the archive's tree needs it: ``body`` is its encoded
    entry (None for the held ``.ARCHIVE_INDEX``), ``content`` its content's
    id (None for a folder, a link or an empty file)."""

    name: str
    is_dir: bool
    size: int
    mtime: int
    body: bytes | None
    content: ObjectId | None


class MemberEntries:
    """The stored members, in archive order, spooled to a temporary file."""

    def __init__(self) -> None:
        self._spool = RecordSpool("coursevault-members-")
        # the .ARCHIVE_INDEX of a tar archive: its member and entry
        self.index: tuple[MemberInfo, dict[str, Any]] | None = None

    def __enter__(self) -> MemberEntries:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._spool.close()

    def __len__(self) -> int:
        return self._spool.count

    def append(self, member: MemberInfo, entry: dict[str, Any], content: ObjectId | None) -> None:
        """Spool a stored member (its entry is final: encoded now)."""
        self._write(member, encode_member(entry), content)

    def hold_index(self, member: MemberInfo, entry: dict[str, Any]) -> None:
        """Keep the ``.ARCHIVE_INDEX``'s entry until commit decides its content."""
        self.index = (member, entry)
        self._write(member, None, None)

    def _write(self, member: MemberInfo, body: bytes | None, content: ObjectId | None) -> None:
        self._spool.append((member.name, member.is_dir, member.size, member.mtime, body, content))

    def __iter__(self) -> Iterator[StoredMember]:
        """The members in the order appended, read back a record at a time."""
        for record in self._spool:
            yield StoredMember(*record)
