"""The manifest tree's node kinds and their encodings (docs/format.md, "Trees").

Every tree object is ``refs + body`` (store.treecodec); the body's first byte
names the kind:

``A`` archive    refs: [member list root, mtimes blob]; body: JSON layout
``M`` member     refs: [content] or []; body: JSON (name, kind, size, content kind, ...)
``D`` document   refs: [root element, length blob]; body: varint len + prologue, then trailer
``X`` element    refs: one list root per marker; body: varint n, n * (varint len + sep), fragment
``L`` list chunk refs: children in order; body: varint level
``R`` record group refs: its records' refs in order; body: varint n, n * (varint nrefs, varint len, X body)
``C`` chunked    refs: content chunks in order; body: varint n, n * varint size

An element record's fragment is its exact XML bytes, from ``<name`` to
``</name>``, in which every run of child records is replaced by the marker
``<_cvlist/>``; the runs hang off the refs.  So an unchanged record is an
unchanged object, and a record's fields (its leaf children) are stored inline
with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from coursevault.errors import CorruptionError
from coursevault.store.ids import ObjectId, ObjectType, object_id
from coursevault.store.treecodec import decode_tree, encode_tree, read_varint, write_varint

MARKER = b"<_cvlist/>"
MARKER_TAG = "_cvlist"

Getter = Callable[[ObjectId], tuple[ObjectType, bytes]]


class NodeFormatError(CorruptionError, ValueError):
    """A tree object does not decode as the node kind expected: a damaged (or
    wrongly referenced) stored node, reported as corruption.  Still a
    ValueError, for the decoders that pass over what they cannot use."""


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- element records -----------------------------------------------------------------
def encode_element(seps: list[bytes], fragment: bytes) -> bytes:
    out = bytearray(b"X")
    write_varint(out, len(seps))
    for sep in seps:
        write_varint(out, len(sep))
        out += sep
    out += fragment
    return bytes(out)


@dataclass(frozen=True)
class ElementNode:
    runs: list[ObjectId]
    seps: list[bytes]
    fragment: bytes


def decode_element(refs: list[ObjectId], body: bytes) -> ElementNode:
    if body[:1] != b"X":
        raise NodeFormatError("not an element node")
    n, pos = read_varint(body, 1)
    seps = []
    for _ in range(n):
        ln, pos = read_varint(body, pos)
        seps.append(body[pos : pos + ln])
        pos += ln
    if n != len(refs):
        raise NodeFormatError("element node: marker and reference counts differ")
    return ElementNode(refs, seps, body[pos:])


# -- lists ---------------------------------------------------------------------------
def encode_list(level: int) -> bytes:
    out = bytearray(b"L")
    write_varint(out, level)
    return bytes(out)


def iter_list(get: Getter, oid: ObjectId) -> Iterator[ObjectId]:
    """Yield the items of a list whose root is ``oid`` (an L chunk, or a single item)."""
    _t, payload = get(oid)
    refs, body = decode_tree(payload)
    if body[:1] != b"L":
        yield oid
        return
    level, _ = read_varint(body, 1)
    if level == 0:
        yield from refs
    else:
        for ref in refs:
            yield from iter_list(get, ref)


# -- records and record groups -------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Record:
    """An element record: its ``X`` body and the roots of its runs.

    Records inside runs are stored inline in ``R`` groups, not as objects of
    their own; their identity is the id their ``X`` node would have, so it is
    the same whichever way a record is stored.
    """

    refs: list[ObjectId]
    body: bytes
    stored_id: ObjectId | None = None  # set when the record is an X object (document roots)

    @property
    def id(self) -> ObjectId:
        if self.stored_id is not None:
            return self.stored_id
        return object_id(ObjectType.TREE, encode_tree(self.refs, self.body))


def encode_group(records: list[tuple[list[ObjectId], bytes]]) -> tuple[list[ObjectId], bytes]:
    """(refs, body) of an ``R`` node holding ``records`` (each (refs, X body))."""
    refs: list[ObjectId] = []
    out = bytearray(b"R")
    write_varint(out, len(records))
    for rrefs, body in records:
        # varints inline for what nearly every record has: no references, a
        # body under 16 KiB (this runs for every record of a backup)
        if rrefs:
            write_varint(out, len(rrefs))
            refs.extend(rrefs)
        else:
            out.append(0)
        n = len(body)
        if n < 0x80:
            out.append(n)
        elif n < 0x4000:
            out.append((n & 0x7F) | 0x80)
            out.append(n >> 7)
        else:
            write_varint(out, n)
        out += body
    return refs, bytes(out)


def decode_group(refs: list[ObjectId], body: bytes) -> Iterator[Record]:
    if body[:1] != b"R":
        raise NodeFormatError("not a record group")
    n, pos = read_varint(body, 1)
    at = 0
    for _ in range(n):
        nrefs, pos = read_varint(body, pos)
        ln, pos = read_varint(body, pos)
        if pos + ln > len(body) or at + nrefs > len(refs):
            raise NodeFormatError("record group: a record runs past the group")
        yield Record(refs[at : at + nrefs], body[pos : pos + ln])
        pos += ln
        at += nrefs
    if pos != len(body) or at != len(refs):
        raise NodeFormatError("record group: trailing bytes or references")


def iter_records(get: Getter, oid: ObjectId) -> Iterator[Record]:
    """The records of a run whose root is ``oid``: an ``R`` group, an ``L`` chunk
    of groups (or, as written before groups existed, of ``X`` ids), or one ``X``."""
    _t, payload = get(oid)
    refs, body = decode_tree(payload)
    kind = body[:1]
    if kind == b"R":
        yield from decode_group(refs, body)
    elif kind == b"L":
        for ref in refs:
            yield from iter_records(get, ref)
    elif kind == b"X":
        yield Record(refs, body, oid)
    else:
        raise NodeFormatError(f"{oid.hex()} is not a run of records")


# -- documents -----------------------------------------------------------------------
def encode_document(prologue: bytes, trailer: bytes) -> bytes:
    out = bytearray(b"D")
    write_varint(out, len(prologue))
    out += prologue
    out += trailer
    return bytes(out)


def decode_document(body: bytes) -> tuple[bytes, bytes]:
    if body[:1] != b"D":
        raise NodeFormatError("not a document node")
    n, pos = read_varint(body, 1)
    return body[pos : pos + n], body[pos + n :]


def encode_length(size: int) -> bytes:
    """The blob a ``D`` node names second: the document's length, a varint."""
    out = bytearray()
    write_varint(out, size)
    return bytes(out)


def document_length(get: Getter, doc: ObjectId) -> int | None:
    """How many bytes a stored document renders to, from its ``D`` node's
    length blob, without rendering it; None for a document stored before
    ``D`` nodes named one.

    Why: a writer that takes a tree it did not cut itself (ingest, from the
    catalog's cache of stored inputs) checks it against the member's size
    before committing, so that no snapshot is ever written that cannot be
    exported (issue 20).
    """
    refs, body = decode_tree(get(doc)[1])
    if body[:1] != b"D" or not refs:
        raise NodeFormatError(f"{doc.hex()} is not a document node")
    if len(refs) < 2:
        return None
    kind, payload = get(refs[1])
    try:
        size, pos = read_varint(payload, 0)
    except (ValueError, IndexError):
        pos = -1
    if kind != ObjectType.BLOB or pos != len(payload):
        raise NodeFormatError(f"document {doc.hex()}: its length blob is malformed")
    return size


def document_has_length(get: Getter, doc: ObjectId, size: int) -> bool:
    """Whether a stored document names the length blob of ``size`` bytes,
    reading only its ``D`` node: the blob's id is its content's hash, so
    comparing ids says what reading it would (the store checks each object
    against its id when it is read, and ``check --read-data`` every one).
    A night's ingest checks every member it takes from the catalog this way,
    one read a member instead of two (:func:`document_length`, which says
    what the length is, for the error message when this says no)."""
    refs, body = decode_tree(get(doc)[1])
    if body[:1] != b"D" or not refs:
        raise NodeFormatError(f"{doc.hex()} is not a document node")
    return len(refs) >= 2 and refs[1] == object_id(ObjectType.BLOB, encode_length(size))


# -- chunked content -----------------------------------------------------------------
def encode_chunked(sizes: list[int]) -> bytes:
    out = bytearray(b"C")
    write_varint(out, len(sizes))
    for s in sizes:
        write_varint(out, s)
    return bytes(out)


def decode_chunked(body: bytes) -> list[int]:
    if body[:1] != b"C":
        raise NodeFormatError("not a chunked-content node")
    n, pos = read_varint(body, 1)
    sizes = []
    for _ in range(n):
        size, pos = read_varint(body, pos)
        sizes.append(size)
    if pos != len(body):
        raise NodeFormatError("chunked-content node: trailing bytes")
    return sizes


# -- members and archives (small, JSON for readability) ------------------------------
def encode_member(entry: dict[str, Any]) -> bytes:
    return b"M" + _json(entry)


def encode_archive(layout: dict[str, Any]) -> bytes:
    return b"A" + _json(layout)


def decode_json_node(body: bytes, kind: bytes) -> dict[str, Any]:
    if body[:1] != kind:
        raise NodeFormatError(f"expected a {kind.decode()} node")
    data = json.loads(body[1:])
    if not isinstance(data, dict):
        raise NodeFormatError("node body is not an object")
    return data


# -- mtimes: one small blob per archive ----------------------------------------------
def encode_mtimes(mtimes: list[int]) -> bytes:
    """Zig-zag varint deltas: nightly backups give every file a new mtime, so the
    times are kept apart from the members and packed tightly."""
    out = bytearray()
    write_varint(out, len(mtimes))
    prev = 0
    for t in mtimes:
        d = t - prev
        write_varint(out, d * 2 if d >= 0 else -d * 2 - 1)
        prev = t
    return bytes(out)


def decode_mtimes(data: bytes) -> list[int]:
    n, pos = read_varint(data, 0)
    out = []
    prev = 0
    for _ in range(n):
        z, pos = read_varint(data, pos)
        d = z // 2 if z % 2 == 0 else -(z + 1) // 2
        prev += d
        out.append(prev)
    return out
