"""A content-addressed source's known files are stored once and never read again.

A database backup's files come from Moodle's file store, named by their
SHA-1 by construction: a night whose file contents did not change must not
read them again (issue 21), and the first night must still check each name.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any

from helpers import MINIMAL_BACKUP

from coursevault.moodle2.archive import ArchiveLayout, MemberInfo
from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import ingest_source
from coursevault.snapshot.source import SourceHead
from coursevault.store.repository import Repository

CONTENT = b"a file of the site's file store\n" * 1000
SHA1 = hashlib.sha1(CONTENT).hexdigest()


class Unreadable(io.RawIOBase):
    """A stream that fails the test if anything reads it."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("a known file was read again")


class FileStoreSource:
    content_addressed = True

    def __init__(self, when: float, file_stream: Any, *, name: str = SHA1) -> None:
        self.name = "test source"
        self.head = SourceHead("site-7", when, {"file": "db"})
        self._stream = file_stream
        self._file = f"files/{name[:2]}/{name}"

    @property
    def layout(self) -> ArchiveLayout:
        return ArchiveLayout("tgz")

    def members(self) -> Iterator[tuple[MemberInfo, Any]]:
        yield (
            MemberInfo("moodle_backup.xml", False, len(MINIMAL_BACKUP), 1),
            io.BytesIO(MINIMAL_BACKUP),
        )
        yield MemberInfo(self._file, False, len(CONTENT), 1), self._stream


def test_a_known_file_is_taken_unread_and_exports_exactly(
    cv_repo: Repository, tmp_path: Any
) -> None:
    first = ingest_source(cv_repo, FileStoreSource(1000.0, io.BytesIO(CONTENT)))
    assert first.files_known == 0
    second = ingest_source(cv_repo, FileStoreSource(2000.0, Unreadable()))
    assert second.files_known == 1 and second.new_objects <= 3  # trees of the snapshot only
    out = tmp_path / "night2.mbz"
    export_snapshot(cv_repo, second.snapshot, str(out))
    import tarfile

    with tarfile.open(out) as tar:
        member = tar.extractfile(f"files/{SHA1[:2]}/{SHA1}")
        assert member is not None and member.read() == CONTENT


def test_a_misnamed_file_is_read_every_time(cv_repo: Repository) -> None:
    wrong = "0" * 40
    first = ingest_source(cv_repo, FileStoreSource(1000.0, io.BytesIO(CONTENT), name=wrong))
    assert first.files_misnamed == 1
    again = ingest_source(cv_repo, FileStoreSource(2000.0, io.BytesIO(CONTENT), name=wrong))
    assert again.files_known == 0 and again.files_misnamed == 1


def test_an_archive_source_never_skips_reading(cv_repo: Repository) -> None:
    """Names inside a user's .mbz are claims, not guarantees: always checked."""
    source = FileStoreSource(1000.0, io.BytesIO(CONTENT))
    source.content_addressed = False
    ingest_source(cv_repo, source)
    again = FileStoreSource(2000.0, io.BytesIO(CONTENT))
    again.content_addressed = False
    assert ingest_source(cv_repo, again).files_known == 0
