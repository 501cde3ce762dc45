"""What ingest reads of moodle_backup.xml before any member is stored
(moodle2/backupinfo.py): the course, the time, where it came from."""

from __future__ import annotations

import io
from typing import Any

import pytest
from helpers import MINIMAL_BACKUP
from lxml import etree

from coursevault.moodle2.backupinfo import read_backup_info


def test_the_manifest_is_read_in_memory_that_does_not_grow_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only <contents> was let go as it was read: a manifest of millions of
    elements elsewhere kept them all (1.7 GB for a 57 kB archive).  Each
    element goes once read, and with it the siblings before it."""
    parsers: list[Any] = []
    original = etree.iterparse

    def iterparse(*args: Any, **kwargs: Any) -> Any:
        parsers.append(original(*args, **kwargs))
        return parsers[-1]

    monkeypatch.setattr(etree, "iterparse", iterparse)
    pad = b"<pad/>" * 100_000
    manifest = MINIMAL_BACKUP.replace(b"<information>", pad + b"<information>").replace(
        b"</moodle_backup>", pad + b"</moodle_backup>"
    )
    info = read_backup_info(io.BytesIO(manifest))
    assert (info.backup_date, info.course_key) == (1700000000, "abc-7")
    assert sum(1 for _ in parsers[0].root.iter()) < 100


def test_a_manifest_field_far_longer_than_moodle_writes_is_refused() -> None:
    """information/name of 50 MB went into the snapshot record and its ref,
    and every `snapshots` after read it again (400 MB)."""
    from coursevault.moodle2.backupinfo import BackupInfoError

    def named(name: bytes) -> bytes:
        assert b"<name>t.mbz</name>" in MINIMAL_BACKUP
        return MINIMAL_BACKUP.replace(b"<name>t.mbz</name>", b"<name>" + name + b"</name>")

    with pytest.raises(BackupInfoError, match="information/name holds 100,000 characters"):
        read_backup_info(io.BytesIO(named(b"x" * 100_000)))
    assert read_backup_info(io.BytesIO(named(b"x" * 300))).fields["name"] == "x" * 300


def test_a_comment_before_the_root_element_is_read_past() -> None:
    """The root's previous sibling is a comment, which has no parent to be
    deleted from: "internal error: TypeError" (letting elements go)."""
    manifest = MINIMAL_BACKUP.replace(b"<moodle_backup>", b"<!-- by hand -->\n<?pi x?>\n"
                                      b"<moodle_backup>", 1)
    info = read_backup_info(io.BytesIO(manifest))
    assert (info.backup_date, info.course_key) == (1700000000, "abc-7")
