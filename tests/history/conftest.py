"""Fixtures for history tests: small hand-made courses whose nights differ in known ways."""

from __future__ import annotations

from pathlib import Path

from helpers import MINIMAL_BACKUP, write_tgz


def forum_xml(discussions: dict[int, list[tuple[int, str]]]) -> bytes:
    """A forum.xml in Moodle's exact form: {discussion id: [(post id, message)]}."""
    out = [
        b'<?xml version="1.0" encoding="UTF-8"?>\n<activity id="1" moduleid="5" modulename="forum" contextid="9">',
        b'\n  <forum id="1">\n    <type>general</type>\n    <name>News</name>\n    <discussions>',
    ]
    for did, posts in discussions.items():
        out.append(
            f'\n      <discussion id="{did}">\n        <name>D{did}</name>\n        <posts>'.encode()
        )
        for pid, msg in posts:
            out.append(
                f'\n          <post id="{pid}">\n            <subject>S{pid}</subject>'
                f"\n            <message>{msg}</message>\n            <attachment></attachment>"
                f"\n          </post>".encode()
            )
        out.append(b"\n        </posts>\n      </discussion>")
    out.append(b"\n    </discussions>\n  </forum>\n</activity>")
    return b"".join(out)


def write_course(
    path: Path,
    discussions: dict[int, list[tuple[int, str]]],
    date: int = 1700000000,
    extra: list[tuple[str, bytes | None]] | None = None,
) -> Path:
    manifest = MINIMAL_BACKUP.replace(b"1700000000", str(date).encode())
    members: list[tuple[str, bytes | None]] = [
        ("activities/", None),
        ("activities/forum_5/", None),
        ("activities/forum_5/forum.xml", forum_xml(discussions)),
        *(extra or []),
        ("moodle_backup.xml", manifest),
    ]
    write_tgz(path, members, mtime=date)
    return path
