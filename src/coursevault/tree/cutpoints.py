"""A cut's checkpoints as the catalog keeps them: sealed, thinned, read back.

An XML member's cut takes the chunker's state every so often
(``XmlChunker.checkpoint``); the member's catalog row keeps them for the
next night, which resumes from the last one whose bytes before it are
tonight's too (xmlmember.py) or grafts from one inside an element that only
moved (graft.py).  Both read the rows this module writes, keyed with
:data:`CUT_KEY`: a chunker that cut differently must not resume from
another's state.  The catalog is a cache on a user's disk, so a state is
used only where its seal holds; a damaged one is passed over.
"""

from __future__ import annotations

import json
from typing import IO, Any

import blake3

READ_SIZE = 1 << 20
# At most MAX_POINTS checkpoints a member: their states are held until the
# session commits (measured on the generated 1 GB course: a checkpoint every
# MiB of its 1,000 MB took night 2's peak to 156 MB).
MAX_POINTS = 32
# A resumed cut takes its checkpoints closer together (at most TAIL_POINTS,
# TAIL_EVERY apart at least): tomorrow's first change is most likely near
# tonight's end, and a night cuts again from the last checkpoint before it.
# On the generated 50 MB course a forum's tail cut a night went from about 1
# MB to a few hundred kB.  Older checkpoints are thinned to make room.
TAIL_EVERY = 128 << 10
TAIL_POINTS = 16
# What both caches are keyed with: change it whenever the chunker would cut
# the same bytes differently (or its state changes shape).
CUT_KEY = b"coursevault xml chunker 3\n"


def tail_every(size: int, offset: int) -> int:
    """The checkpoints' spacing in a member of ``size`` bytes cut from ``offset`` on."""
    return max(TAIL_EVERY, (size - offset) // TAIL_POINTS + 1)


def thin(kept: list[list[Any]], new: list[list[Any]]) -> list[list[Any]]:
    """At most MAX_POINTS checkpoints: all of tonight's, and every other one
    of the older ones as often as needed (always the last, nearest tonight's
    change), so they still cover the whole member."""
    while kept and len(kept) + len(new) > MAX_POINTS:
        kept = kept[::-1][::2][::-1]
        if len(kept) == 1 and len(new) >= MAX_POINTS:
            kept = []
    return kept + new[-MAX_POINTS:]


def old_points(found: tuple[bytes, dict[str, Any]] | None) -> list[list[Any]]:
    """The checkpoints a catalog row holds, in order; [] for anything else."""
    if found is None or found[1].get("kind") != "checkpoints":
        return []
    out: list[list[Any]] = []
    for point in found[1].get("points", []):
        if (
            isinstance(point, list)
            and len(point) == 3
            and isinstance(point[0], int)
            and isinstance(point[1], str)
            and isinstance(point[2], dict)
        ):
            out.append(point)
    out.sort(key=lambda p: p[0])
    return out


def still_sealed(old: list[list[Any]], at: dict[int, tuple[Any, int]]) -> list[list[Any]]:
    """The first of the ``old`` checkpoints whose seals hold for tonight's
    bytes (``at``: the hash of tonight's bytes before each, and their line
    breaks): the cut may resume from the last of them."""
    same = 0
    while same < len(old):
        here = at.get(old[same][0])  # none past tonight's end
        if here is None or seal(here[0].digest(), old[same][2]) != old[same][1]:
            break
        same += 1
    return old[:same]


def hash_points(
    spool: IO[bytes], offset: int, hasher: Any, points: list[tuple[int, dict[str, Any]]]
) -> list[list[Any]]:
    """[offset, seal, state] for the new checkpoints (see :func:`seal`),
    hashing the spool from ``offset`` on (``hasher`` holds the bytes before)."""
    digest = hasher.copy() if hasher is not None else blake3.blake3(CUT_KEY)
    spool.seek(offset)
    pos = offset
    out: list[list[Any]] = []
    for at, state in points:
        while pos < at:
            data = spool.read(min(READ_SIZE, at - pos))
            if not data:
                return out
            digest.update(data)
            pos += len(data)
        out.append([at, seal(digest.digest(), state), state])
    return out


def seal(prefix: bytes, state: dict[str, Any]) -> str:
    """What a checkpoint is checked by: the hash of the bytes before it and of
    its state, so a state damaged in the catalog is never resumed from (it
    would store a wrong tree), only passed over."""
    text = json.dumps(state, sort_keys=True, separators=(",", ":")).encode()
    return blake3.blake3(CUT_KEY + prefix + text).hexdigest()
