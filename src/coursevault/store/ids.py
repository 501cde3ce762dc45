"""Object ids: blake3-256 over a one-byte type tag and the canonical bytes.

The type tag is part of the hashed input so that a blob and a tree with the same
bytes never share an id (a tree is never mistaken for file content).  Ids are
kept as raw 32-byte ``bytes`` on every hot path; hex is for people.
"""

from __future__ import annotations

import enum

import blake3

ObjectId = bytes
ID_SIZE = 32


class ObjectType(enum.IntEnum):
    """What an object holds; the value is the tag byte hashed before the payload."""

    BLOB = 1  # file content or a chunk of it, raw stored XML
    TREE = 2  # manifest tree node (archive, member, document, element, list)
    SNAPSHOT = 3  # snapshot record (stored as its own file, see format.md)


_TAGS = {t: bytes([t.value]) for t in ObjectType}
# The type for a tag byte read from disk (a dict lookup: the enum's own call
# is slow on paths that decode every index entry).
TYPES: dict[int, ObjectType] = {t.value: t for t in ObjectType}


def object_id(kind: ObjectType, payload: bytes | memoryview) -> ObjectId:
    """Return the id of an object of type ``kind`` with the given payload."""
    h = blake3.blake3(_TAGS[kind])
    h.update(payload)
    return h.digest()


def to_hex(oid: ObjectId) -> str:
    return oid.hex()


def from_hex(text: str) -> ObjectId:
    """Parse a full 64-digit hex id (no prefixes; see the selector module for those)."""
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError(f"not a hex object id: {text!r}") from exc
    if len(raw) != ID_SIZE:
        raise ValueError(f"object id must be {ID_SIZE * 2} hex digits: {text!r}")
    return raw
