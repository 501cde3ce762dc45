"""One XML member of an archive into the store, cutting no more than changed.

A night's backup repeats most of the night before's.  Two things the local
store remembers (``repo.stored_inputs``: rows of a snapshot still there) spare
the work:

* what a member's bytes were stored as: a member whose bytes an earlier
  night stored is taken as that tree, unparsed;
* for a member of over a MiB, the chunker's state every MiB (at most 32 a
  member; ``XmlChunker.checkpoint``), sealed with a hash of the bytes before
  it and of the state: a member that changed only after some of those points
  -- a forum.xml with new posts at its end -- is cut from the last point
  whose seal holds.  Measured on the generated 50 MB course: 48 of its 50 MB
  of XML change every night, and 34 MB are resumed past.  The same
  checkpoints, with hashes of the bytes between the elements open at them
  (graft.py), let a member changed near its top -- a quiz's grades --
  jump over what only moved: the attempts below (graft.py).

Both are keyed with the chunker's version: a chunker that cut differently
must not resume from another's state.  Only the catalog of this machine is
asked, and only for trees still indexed, so a stale answer costs time, never
correctness: a state is used only where the bytes before it hash the same,
and a damaged one is passed over.  Likewise a member's row is taken only if
it is sealed and its size is tonight's (storedrows.py).

The checkpoints' rows are cutpoints.py's, grafting graft.py's; this module
spools, hashes and chooses: reuse, resume, graft or cut whole.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import blake3

from coursevault.store.ids import ObjectId
from coursevault.store.session import WriteSession
from coursevault.store.stored_inputs import StoredInput
from coursevault.tree.cutpoints import (
    CUT_KEY,
    MAX_POINTS,
    READ_SIZE,
    hash_points,
    old_points,
    still_sealed,
    tail_every,
    thin,
)
from coursevault.tree.filechunks import store_content
from coursevault.tree.graft import CheckpointGrafts, graft_info, known_segments
from coursevault.tree.storedrows import row_holds, seal_row
from coursevault.tree.xmlcheck import XmlSyntax
from coursevault.tree.xmltags import NotCanonical
from coursevault.tree.xmltree import ChunkResult, XmlChunker

# A checkpoint every MiB (at most cutpoints.MAX_POINTS a member).
CHECKPOINT_EVERY = 1 << 20
KEY_HEAD = 4096  # how far into a member its root element is looked for (points_key)
# The first start tag, past the XML declaration, comments and processing instructions.
_ROOT_TAG = re.compile(rb"<[A-Za-z_][^<>]*>")


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
    grafted: int = 0  # bytes not cut again past it (jumped over: XmlChunker._graft)
    stored_inputs: list[StoredInput] = field(default_factory=list)


@dataclass
class _Spooled:
    """A member copied to the spool: its size, the hash of its bytes (the
    catalog key of what they were stored as), and the hash and line breaks
    before each of the night before's checkpoints."""

    size: int
    key: bytes
    at: dict[int, tuple[Any, int]]


def points_key(name: str, head: bytes) -> bytes:
    """The catalog key of a member's checkpoints: its name and either its
    root element's start tag, when that has attributes, or else its first
    ``CHECKPOINT_EVERY`` bytes (``head``: longer is cut to that).

    Keyed by what it holds, not by the course, the key is known before the
    course is: moodle_backup.xml, which names it, comes after the
    activities, and ingest reads an archive only once.  An activity's root
    element carries its module and context ids, which tell one course's
    member from another's and never change, while its first bytes may (a
    quiz's grades, a few kB down, change every night: grafting needs the
    night before's checkpoints all the same).  Members whose root element is
    bare (users.xml) are told apart by their first MiB.  A checkpoint found
    for another course's member is passed over: it is used only where its
    bytes hash the same as tonight's.
    """
    m = _ROOT_TAG.search(head, 0, KEY_HEAD)
    what = m.group(0) if m is not None and b"=" in m.group(0) else head[:CHECKPOINT_EVERY]
    key = CUT_KEY + b"points\n" + name.encode() + b"\n" + what
    return blake3.blake3(key).digest()


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
    ``Cut.stored_inputs`` holds the rows to remember (``repo.stored_inputs``)
    once the session has committed.
    """
    inputs = session.repo.stored_inputs
    every_min = CHECKPOINT_EVERY
    head: list[bytes] = []  # the first reads, up to every_min bytes at least
    size = 0
    while size < every_min and (data := stream.read(READ_SIZE)):
        head.append(data)
        size += len(data)
    points = None
    if name is not None and size >= every_min:
        points = points_key(name, b"".join(head))
    found_points = inputs.get(points) if points is not None else None
    old = old_points(found_points)
    spooled = _spool(itertools.chain(head, iter(lambda: stream.read(READ_SIZE), b"")), spool, old)
    if spooled.size == 0:
        return Cut(None, "empty", raw_reason="empty file")
    key, pos = spooled.key, spooled.size
    known = inputs.get(key)
    if known is not None and row_holds(key, known, pos):
        return _reused(key, known, points, found_points)

    kept = still_sealed(old, spooled.at)
    grafts = CheckpointGrafts.load(spool, pos, old, found_points[1]) if found_points else None
    every = max(every_min, pos // MAX_POINTS + 1)
    try:
        chunker, kept, res = _cut(session, spool, spooled, kept, every, grafts)
    except NotCanonical as exc:
        return _raw(session, spool, text_chunker, key, pos, str(exc))
    offset = kept[-1][0] if kept else 0
    tree = res.store(session)
    cut = Cut(tree, "xml", res.elements, res.records, resumed_at=offset, grafted=chunker.grafted)
    notes = {"kind": "xml", "elements": res.elements, "records": res.records, "size": pos}
    cut.stored_inputs.append(seal_row(key, tree, notes))
    if points is not None and (kept or chunker.checkpoints):
        old_row = found_points[1] if found_points else None
        row = _points_row(spool, spooled, kept, chunker.checkpoints, old_row)
        cut.stored_inputs.append((points, tree, row))
    spool.seek(0)
    return cut


def _spool(reads: Iterable[bytes], spool: IO[bytes], old: list[list[Any]]) -> _Spooled:
    """Copy the member to ``spool`` and hash it, keeping the hash (and line
    count) at each of the ``old`` checkpoints; the spool is left at 0."""
    digest = blake3.blake3(CUT_KEY)
    at: dict[int, tuple[Any, int]] = {}
    pos = lines = i = 0
    for data in reads:
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
    return _Spooled(pos, digest.digest(), at)


def _reused(
    key: bytes,
    known: tuple[ObjectId, dict[str, Any]],
    points: bytes | None,
    found_points: tuple[ObjectId, dict[str, Any]] | None,
) -> Cut:
    """A member whose bytes an earlier night stored: that tree, uncut."""
    tree, notes = known
    if notes["kind"] == "raw":
        cut = Cut(tree, "raw", raw_reason=str(notes.get("reason", "")), reused=True)
    else:
        elements, records = int(notes.get("elements", 0)), int(notes.get("records", 0))
        cut = Cut(tree, "xml", elements, records, reused=True)
    # the rows answer while a snapshot reaching their trees lives: tonight's
    cut.stored_inputs.append(seal_row(key, tree, notes))
    if points is not None and found_points is not None and found_points[0] == tree:
        cut.stored_inputs.append((points, tree, found_points[1]))  # cut from this very tree
    return cut


def _cut(
    session: WriteSession,
    spool: IO[bytes],
    spooled: _Spooled,
    kept: list[list[Any]],
    every: int,
    grafts: CheckpointGrafts | None,
) -> tuple[XmlChunker, list[list[Any]], ChunkResult]:
    """Cut the spooled member, resuming from the last of the ``kept``
    checkpoints and grafting where ``grafts`` allow; (the chunker, the
    checkpoints actually resumed past, the result).  A state that does not
    fit, or a resumed or grafted cut that meets malformed bytes, is answered
    by a whole cut: it says which, with the real line.  :class:`XmlSyntax`
    and :class:`NotCanonical` propagate."""
    chunker = None
    offset = 0
    if kept:
        offset, _hash, state = kept[-1]
        try:
            chunker = XmlChunker.resume(
                session,
                offset,
                state,
                lines=spooled.at[offset][1],
                checkpoint_every=tail_every(spooled.size, offset),
                grafts=grafts,
            )
        except (ValueError, KeyError, TypeError, XmlSyntax):
            kept, offset = [], 0  # a state this chunker cannot take: cut it all
    if chunker is None:
        chunker = XmlChunker(session, checkpoint_every=every, grafts=grafts)
    try:
        return chunker, kept, _feed(chunker, spool, offset)
    except XmlSyntax:
        if not offset and not chunker.grafted:
            raise
    # the bytes after a checkpoint are malformed -- or the resume was wrong
    chunker = XmlChunker(session, checkpoint_every=every)
    return chunker, [], _feed(chunker, spool, 0)


def _raw(
    session: WriteSession,
    spool: IO[bytes],
    text_chunker: dict[str, int],
    key: bytes,
    size: int,
    reason: str,
) -> Cut:
    """A member the chunker cannot cut exactly: its bytes, kept as they are."""
    spool.seek(0)
    raw, _size = store_content(session, spool, text_chunker)
    spool.seek(0)
    cut = Cut(raw, "raw", raw_reason=reason)
    if raw is not None:
        notes = {"kind": "raw", "reason": reason, "size": size}
        cut.stored_inputs.append(seal_row(key, raw, notes))
    return cut


def _points_row(
    spool: IO[bytes],
    spooled: _Spooled,
    kept: list[list[Any]],
    checkpoints: list[tuple[int, dict[str, Any]]],
    old_row: dict[str, Any] | None,
) -> dict[str, Any]:
    """The member's checkpoints row for tomorrow: the old ones resumed past
    and tonight's, thinned, with what grafting from them needs."""
    offset = kept[-1][0] if kept else 0
    new = hash_points(spool, offset, spooled.at[offset][0] if offset else None, checkpoints)
    final = thin(kept, new)
    unchanged = known_segments(old_row, offset) if offset and old_row is not None else {}
    return {"kind": "checkpoints", "points": final, "grafts": graft_info(spool, final, unchanged)}


def _feed(chunker: XmlChunker, spool: IO[bytes], offset: int) -> ChunkResult:
    spool.seek(offset)
    while data := spool.read(READ_SIZE):
        chunker.feed(data)
        if chunker.next_offset != offset + len(data):  # it jumped past what it was fed
            spool.seek(chunker.next_offset)
        offset = chunker.next_offset
    return chunker.close()
