"""One XML member of an archive into the store, cutting no more than changed.

A night's backup repeats most of the night before's.  Two things the local
catalog remembers (``Catalog.derived``: rows of a snapshot still there) spare
the work:

* what a member's bytes were stored as: a member whose bytes an earlier
  night stored is taken as that tree, unparsed;
* for a member of over a MiB, the chunker's state every MiB (at most 32 a
  member; ``XmlChunker.checkpoint``), sealed with a hash of the bytes before
  it and of the state: a member that changed only after some of those points
  -- a forum.xml with new posts at its end -- is cut from the last point
  whose seal holds.  Measured on the generated 50 MB course: 48 of its 50 MB
  of XML change every night, and 34 MB are resumed past.

Both are keyed with the chunker's version: a chunker that cut differently
must not resume from another's state.  Only the catalog of this machine is
asked, and only for trees still indexed, so a stale answer costs time, never
correctness: a state is used only where the bytes before it hash the same,
and a damaged one is passed over.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import IO, Any

import blake3

from coursevault.snapshot.filechunks import store_content
from coursevault.snapshot.xmltree import ChunkResult, NotCanonical, XmlChunker, XmlSyntax
from coursevault.store.ids import ObjectId
from coursevault.store.repository import WriteSession

READ_SIZE = 1 << 20
# A checkpoint every MiB, but at most MAX_POINTS a member: their states are
# held until the session commits (measured on the generated 1 GB course: a
# checkpoint every MiB of its 1,000 MB took night 2's peak to 156 MB).
CHECKPOINT_EVERY = 1 << 20
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


@dataclass
class Cut:
    """What storing one member gave."""

    content: ObjectId | None
    kind: str  # "xml", "raw" or "empty"
    elements: int = 0
    records: int = 0
    raw_reason: str | None = None
    reused: bool = False  # taken whole from an earlier night
    resumed_at: int = 0  # bytes not cut again (before the checkpoint resumed from)
    remember: list[tuple[bytes, ObjectId, dict[str, Any]]] = field(default_factory=list)


def points_key(name: str, head: bytes) -> bytes:
    """The catalog key of a member's checkpoints: its name and its first
    ``CHECKPOINT_EVERY`` bytes (``head``).

    Every checkpoint lies past those bytes and is resumed from only where
    the bytes before it are the same, so a member whose head changed has no
    checkpoint to use anyway.  Keyed by what it holds, not by the course,
    the key is known before the course is: moodle_backup.xml, which names
    it, comes after the activities, and ingest reads an archive only once.
    """
    return blake3.blake3(CUT_KEY + b"points\n" + name.encode() + b"\n" + head).digest()


def store_xml_member(
    session: WriteSession,
    stream: Any,
    spool: IO[bytes],
    text_chunker: dict[str, int],
    name: str | None = None,
) -> Cut:
    """Store one XML member read from ``stream`` (its bytes are left in
    ``spool``, from offset 0).  ``name`` is the member's name in the
    archive, to key its checkpoints with (None: keep none).
    :class:`XmlSyntax` propagates; the caller says which archive and member.
    ``Cut.remember`` holds the rows for the catalog, to add once the session
    has committed.
    """
    catalog = session.repo.catalog
    every_min = CHECKPOINT_EVERY
    head: list[bytes] = []  # the first reads, up to every_min bytes at least
    size = 0
    while size < every_min and (data := stream.read(READ_SIZE)):
        head.append(data)
        size += len(data)
    points = None
    if name is not None and size >= every_min:
        points = points_key(name, b"".join(head)[:every_min])
    found_points = catalog.derived(points) if points is not None else None
    old = _old_points(found_points)
    # spool and hash, keeping the hash (and line count) at each old checkpoint
    digest = blake3.blake3(CUT_KEY)
    at: dict[int, tuple[Any, int]] = {}
    pos = lines = i = 0
    for data in itertools.chain(head, iter(lambda: stream.read(READ_SIZE), b"")):
        spool.write(data)
        start = 0
        while i < len(old) and old[i][0] <= pos + len(data):
            stop = old[i][0] - pos
            digest.update(data[start:stop])
            lines += data.count(b"\n", start, stop)
            at[old[i][0]] = (digest.copy(), lines)
            start = stop
            i += 1
        digest.update(data[start:])
        if i < len(old):  # lines matter only up to the last old checkpoint
            lines += data.count(b"\n", start)
        pos += len(data)
    spool.seek(0)
    if pos == 0:
        return Cut(None, "empty", raw_reason="empty file")
    key = digest.digest()
    known = catalog.derived(key)
    if known is not None and known[1].get("kind") in ("xml", "raw"):
        tree, notes = known
        if notes["kind"] == "raw":
            cut = Cut(tree, "raw", raw_reason=str(notes.get("reason", "")), reused=True)
        else:
            elements, records = int(notes.get("elements", 0)), int(notes.get("records", 0))
            cut = Cut(tree, "xml", elements, records, reused=True)
        # the rows answer while a snapshot reaching their trees lives: tonight's
        cut.remember.append((key, tree, notes))
        if points is not None and found_points is not None and found_points[0] == tree:
            cut.remember.append((points, tree, found_points[1]))  # cut from this very tree
        return cut

    every = max(every_min, pos // MAX_POINTS + 1)
    # resume from the last checkpoint whose bytes before it are tonight's too
    same = 0
    while same < len(old):
        here = at.get(old[same][0])  # none past tonight's end
        if here is None or _seal(here[0].digest(), old[same][2]) != old[same][1]:
            break
        same += 1
    kept = old[:same]
    chunker = None
    offset = 0
    if kept:
        offset, _hash, state = kept[-1]
        tail_every = max(TAIL_EVERY, (pos - offset) // TAIL_POINTS + 1)
        try:
            chunker = XmlChunker.resume(
                session, offset, state, lines=at[offset][1], checkpoint_every=tail_every
            )
        except (ValueError, KeyError, TypeError, XmlSyntax):
            kept, offset = [], 0  # a state this chunker cannot take: cut it all
    if chunker is None:
        chunker = XmlChunker(session, checkpoint_every=every)
    try:
        try:
            res = _feed(chunker, spool, offset)
        except XmlSyntax:
            if not offset:
                raise
            # the bytes after a checkpoint are malformed -- or the resume was
            # wrong: a whole cut says which, with the real line
            kept, offset = [], 0
            chunker = XmlChunker(session, checkpoint_every=every)
            res = _feed(chunker, spool, 0)
    except NotCanonical as exc:
        spool.seek(0)
        raw, _size = store_content(session, spool, text_chunker)
        spool.seek(0)
        cut = Cut(raw, "raw", raw_reason=str(exc))
        if raw is not None:
            cut.remember.append((key, raw, {"kind": "raw", "reason": str(exc)}))
        return cut
    tree = res.store(session)
    cut = Cut(tree, "xml", res.elements, res.records, resumed_at=offset)
    cut.remember.append(
        (key, tree, {"kind": "xml", "elements": res.elements, "records": res.records})
    )
    if points is not None and (kept or chunker.checkpoints):
        new = _hash_points(spool, offset, at[offset][0] if offset else None, chunker.checkpoints)
        cut.remember.append((points, tree, {"kind": "checkpoints", "points": _thin(kept, new)}))
    spool.seek(0)
    return cut


def _thin(kept: list[list[Any]], new: list[list[Any]]) -> list[list[Any]]:
    """At most MAX_POINTS checkpoints: all of tonight's, and every other one
    of the older ones as often as needed (always the last, nearest tonight's
    change), so they still cover the whole member."""
    while kept and len(kept) + len(new) > MAX_POINTS:
        kept = kept[::-1][::2][::-1]
        if len(kept) == 1 and len(new) >= MAX_POINTS:
            kept = []
    return kept + new[-MAX_POINTS:]


def _feed(chunker: XmlChunker, spool: IO[bytes], offset: int) -> ChunkResult:
    spool.seek(offset)
    while data := spool.read(READ_SIZE):
        chunker.feed(data)
    return chunker.close()


def _old_points(found: tuple[ObjectId, dict[str, Any]] | None) -> list[list[Any]]:
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


def _hash_points(
    spool: IO[bytes], offset: int, hasher: Any, points: list[tuple[int, dict[str, Any]]]
) -> list[list[Any]]:
    """[offset, seal, state] for the new checkpoints (see :func:`_seal`),
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
        out.append([at, _seal(digest.digest(), state), state])
    return out


def _seal(prefix: bytes, state: dict[str, Any]) -> str:
    """What a checkpoint is checked by: the hash of the bytes before it and of
    its state, so a state damaged in the catalog is never resumed from (it
    would store a wrong tree), only passed over."""
    text = json.dumps(state, sort_keys=True, separators=(",", ":")).encode()
    return blake3.blake3(CUT_KEY + prefix + text).hexdigest()
