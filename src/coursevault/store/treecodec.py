"""The envelope every tree object shares: its references, then an opaque body.

The store must know which objects a tree points to -- to check that a snapshot
is complete, and to find garbage -- without knowing what the tree means.  So
every tree payload starts with its list of child ids::

    tree = varint n  n * id[32]  body

and the snapshot layer gives the body its meaning (git trees, restic trees and
dulwich objects draw the same line).
"""

from __future__ import annotations

from collections.abc import Sequence

from coursevault.store.ids import ID_SIZE, ObjectId


def write_varint(out: bytearray, value: int) -> None:
    if 0 <= value < 0x80:  # most varints are counts and lengths below 128
        out.append(value)
        return
    if value < 0 or value >= 1 << 64:
        raise ValueError("varints are unsigned 64-bit values")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Return (value, new position); raises ValueError on truncated input."""
    shift = 0
    value = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


# the count byte of a tree with fewer than 128 references (nearly every tree)
_COUNTS = [bytes([n]) for n in range(0x80)]


def encode_tree(refs: Sequence[ObjectId], body: bytes) -> bytes:
    n = len(refs)
    if n < 0x80:  # one join: every object a backup writes is encoded here
        return b"".join([_COUNTS[n], *refs, body]) if n else _COUNTS[0] + body
    out = bytearray()
    write_varint(out, n)
    for r in refs:
        out += r
    out += body
    return bytes(out)


def decode_tree(payload: bytes) -> tuple[list[ObjectId], bytes]:
    """Split a tree payload into (refs, body)."""
    n = payload[0] if payload else 0x80
    if n < 0x80:  # fewer than 128 references: nearly every tree
        pos = 1
    else:
        n, pos = read_varint(payload, 0)
    end = pos + n * ID_SIZE
    if end > len(payload):
        raise ValueError("tree reference list runs past the end of the object")
    refs = [payload[pos + i * ID_SIZE : pos + (i + 1) * ID_SIZE] for i in range(n)]
    return refs, payload[end:]


def tree_refs(payload: bytes) -> list[ObjectId]:
    return decode_tree(payload)[0]
