"""Object ids: blake3-256 over a one-byte type tag and the canonical bytes.

The type tag is part of the hashed input so that a blob and a tree with the same
bytes never share an id (a tree is never mistaken for file content).  Ids are
kept as raw 32-byte ``bytes`` on every hot path; hex is for people.

Every object id is computed here -- :func:`object_id`, or on hot paths a
hasher from :func:`id_hasher` -- so that keyed ids (for encryption) change
this module alone.  File names (packs, index files) are hashes of files, not
object ids, and are not computed here.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

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


# An encrypted repository's ids are keyed BLAKE3 under its id key (keys.py),
# so an id says nothing of content to whoever lacks the key.  One key per
# process at a time: the repository opened last sets it (None: plain ids),
# and closing it puts plain ids back.
_id_key: bytes | None = None


def use_id_key(key: bytes | None) -> None:
    """Compute every id from now on under ``key`` (None: unkeyed)."""
    global _id_key
    if key is not None and len(key) != 32:
        raise ValueError("an id key is 32 bytes")
    _id_key = key


def current_id_key() -> bytes | None:
    return _id_key


def object_id(kind: ObjectType, payload: bytes | memoryview) -> ObjectId:
    """Return the id of an object of type ``kind`` with the given payload."""
    key = _id_key
    h = blake3.blake3(_TAGS[kind]) if key is None else blake3.blake3(_TAGS[kind], key=key)
    h.update(payload)
    return h.digest()


def id_hasher(kind: ObjectType, prefix: bytes = b"") -> Callable[[], blake3.blake3]:
    """A factory of hashers primed with the id input of an object of type
    ``kind`` whose payload starts with ``prefix``: ``update`` one with the
    rest of the payload and its ``digest()`` is the object's id.

    For the hot paths that know a payload's head without building the payload
    (the XML cutter hashes a record's fragment behind a fixed envelope): a
    call costs what blake3's constructor does (measured: within noise of it
    per record), and the id is still defined in this one module.  The key
    is read at each call, so a factory made at import serves any repository."""
    head = _TAGS[kind] + prefix

    def hasher() -> blake3.blake3:
        key = _id_key
        return blake3.blake3(head) if key is None else blake3.blake3(head, key=key)

    return hasher


def ref_name(series: str) -> str:
    """The file name a series' head ref is kept under: the series itself, or
    in an encrypted repository its keyed hash, so a bucket's listing does
    not name the courses (docs/format.md §12)."""
    key = _id_key
    if key is None:
        return series
    return blake3.blake3(b"ref\0" + series.encode(), key=key).hexdigest()


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
