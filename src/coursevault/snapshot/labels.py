"""A snapshot's course key and its source's label: what every command may
name or check, kept apart from the archive readers so that a command which
only lists snapshots (``log``) does not import them."""

from __future__ import annotations

from typing import Any

from coursevault.errors import BadInputError

COURSE_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def validate_course_key(key: str) -> str:
    # not from a dot: a key names its ref file, refs/heads/<key>, where '..'
    # would climb out and '.cas-lock' is the folder's own lock
    if not key or len(key) > 200 or not set(key) <= COURSE_KEY_CHARS or key.startswith("."):
        raise BadInputError(
            f"invalid course key {key!r}: use letters, digits, '.', '_' and '-' (at most 200, "
            "not starting with '.')"
        )
    return key


def source_label(source: dict[str, Any]) -> str:
    """What a snapshot was made from, in a word: the archive's file name, or
    ``database`` and the course id for a backup straight from a database."""
    if source.get("database"):
        return f"database course {source.get('original_course_id', '?')}"
    return str(source.get("file", ""))
