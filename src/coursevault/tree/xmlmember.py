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
  of XML change every night, and 34 MB are resumed past.  The same
  checkpoints, with hashes of the bytes between the elements open at them
  (``_graft_info``), let a member changed near its top -- a quiz's grades --
  jump over what only moved: the attempts below (``_Grafts``).

Both are keyed with the chunker's version: a chunker that cut differently
must not resume from another's state.  Only the catalog of this machine is
asked, and only for trees still indexed, so a stale answer costs time, never
correctness: a state is used only where the bytes before it hash the same,
and a damaged one is passed over.  Likewise a member's row is taken only if
it is sealed and its size is tonight's (storedrows.py).
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import blake3

from coursevault.store.ids import ObjectId
from coursevault.store.session import WriteSession
from coursevault.tree.filechunks import store_content
from coursevault.tree.storedrows import row_holds, seal_row
from coursevault.tree.xmltree import (
    ChunkResult,
    Graft,
    NotCanonical,
    XmlChunker,
    XmlSyntax,
)

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
KEY_HEAD = 4096  # how far into a member its root element is looked for (points_key)
# The first start tag, past the XML declaration, comments and processing instructions.
_ROOT_TAG = re.compile(rb"<[A-Za-z_][^<>]*>")
# Grafting (XmlChunker._graft): only from elements open over at least
# MIN_GRAFT bytes before a checkpoint (smaller jumps would not pay for their
# checks).  A start tag without attributes (<posts>) opens many times, and
# most are other bytes: the candidates are those whose first PEEK bytes hash
# the same as tonight's, then checked over their first PROBE bytes.
MIN_GRAFT = 16 << 10
PEEK = 256
PROBE = 4096
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
    grafted: int = 0  # bytes not cut again past it (jumped over: XmlChunker._graft)
    remember: list[tuple[bytes, ObjectId, dict[str, Any]]] = field(default_factory=list)


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
        points = points_key(name, b"".join(head))
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
    if known is not None and row_holds(key, known, pos):
        tree, notes = known
        if notes["kind"] == "raw":
            cut = Cut(tree, "raw", raw_reason=str(notes.get("reason", "")), reused=True)
        else:
            elements, records = int(notes.get("elements", 0)), int(notes.get("records", 0))
            cut = Cut(tree, "xml", elements, records, reused=True)
        # the rows answer while a snapshot reaching their trees lives: tonight's
        cut.remember.append(seal_row(key, tree, notes))
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
    grafts = _Grafts.load(spool, pos, old, found_points[1]) if found_points else None
    chunker = None
    offset = 0
    if kept:
        offset, _hash, state = kept[-1]
        tail_every = max(TAIL_EVERY, (pos - offset) // TAIL_POINTS + 1)
        try:
            chunker = XmlChunker.resume(
                session,
                offset,
                state,
                lines=at[offset][1],
                checkpoint_every=tail_every,
                grafts=grafts,
            )
        except (ValueError, KeyError, TypeError, XmlSyntax):
            kept, offset = [], 0  # a state this chunker cannot take: cut it all
    if chunker is None:
        chunker = XmlChunker(session, checkpoint_every=every, grafts=grafts)
    try:
        try:
            res = _feed(chunker, spool, offset)
        except XmlSyntax:
            if not offset and not chunker.grafted:
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
            notes = {"kind": "raw", "reason": str(exc), "size": pos}
            cut.remember.append(seal_row(key, raw, notes))
        return cut
    tree = res.store(session)
    cut = Cut(tree, "xml", res.elements, res.records, resumed_at=offset, grafted=chunker.grafted)
    notes = {"kind": "xml", "elements": res.elements, "records": res.records, "size": pos}
    cut.remember.append(seal_row(key, tree, notes))
    if points is not None and (kept or chunker.checkpoints):
        new = _hash_points(spool, offset, at[offset][0] if offset else None, chunker.checkpoints)
        final = _thin(kept, new)
        unchanged = _known_segments(found_points[1], offset) if offset and found_points else {}
        row = {
            "kind": "checkpoints",
            "points": final,
            "grafts": _graft_info(spool, final, unchanged),
        }
        cut.remember.append((points, tree, row))
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
        if chunker.next_offset != offset + len(data):  # it jumped past what it was fed
            spool.seek(chunker.next_offset)
        offset = chunker.next_offset
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


def _graftable(offset: int, depth: int, item: dict[str, Any]) -> bool:
    """Whether a checkpoint's open element is one to graft from: not the root
    (resuming covers that), open over MIN_GRAFT bytes at least, with a child
    (its place in its parent settled) and recorded by a chunker that kept
    its start tag's end."""
    return (
        depth > 0
        and offset - int(item["start"]) >= MIN_GRAFT
        and item["pieces"] is not None
        and "head" in item
    )


def _known_segments(row: dict[str, Any], upto: int) -> dict[tuple[int, int], bytes]:
    """The segment digests of last night's row that end by ``upto`` -- bytes
    tonight's are the same as (a resumed cut's), so not hashed again: on the
    generated 50 MB course that was 21 ms of a 0.57 s night."""
    info: Any = row.get("grafts")
    try:
        bounds = [int(b) for b in info["bounds"]]
        raw = bytes.fromhex(info["digests"])
    except (TypeError, KeyError, ValueError):
        return {}
    return {
        (bounds[i], bounds[i + 1]): raw[16 * i : 16 * i + 16]
        for i in range(min(len(bounds) - 1, len(raw) // 16))
        if bounds[i + 1] <= upto
    }


def _graft_info(
    spool: IO[bytes], points: list[list[Any]], known: dict[tuple[int, int], bytes]
) -> dict[str, Any]:
    """What tomorrow's cut needs to graft from ``points`` (see
    :class:`_Grafts`): the start tags of the elements worth grafting from,
    hashes of the bytes between each one's start, PROBE bytes past it and
    the checkpoints taken inside it (those in ``known`` as they are), and a
    hash of each checkpoint's state."""
    heads: dict[int, int] = {}
    bounds: set[int] = set()
    for offset, _seal, state in points:
        for depth, item in enumerate(state["stack"]):
            if _graftable(offset, depth, item):
                start = int(item["start"])
                heads[start] = int(item["head"])
                bounds.update((start, start + PROBE, offset))
    order = sorted(bounds)
    digests = b"".join(
        known.get((lo, hi)) or _segment(spool, lo, hi) for lo, hi in itertools.pairwise(order)
    )
    tags = []
    for start, head in sorted(heads.items()):
        spool.seek(start)
        first = spool.read(max(PEEK, head - start))
        tags.append([start, first[: head - start].hex(), _peek(first[:PEEK])])
    spool.seek(0)
    return {
        "bounds": order,
        "digests": digests.hex(),
        "tags": tags,
        "sums": [[offset, _state_sum(state)] for offset, _seal, state in points],
    }


def _segments(spool: IO[bytes], bounds: list[int], first: int, delta: int = 0) -> Iterator[bytes]:
    """Digests of the bytes from bounds[i] to bounds[i + 1], moved by
    ``delta``, for i from ``first`` on; lazily, so that a caller that finds
    a mismatch reads no further."""
    for i in range(first, len(bounds) - 1):
        yield _segment(spool, bounds[i] + delta, bounds[i + 1] + delta)


def _segment(spool: IO[bytes], lo: int, hi: int) -> bytes:
    spool.seek(lo)
    h = blake3.blake3()
    while lo < hi and (data := spool.read(min(READ_SIZE, hi - lo))):
        h.update(data)
        lo += len(data)
    return h.digest(16)


def _peek(data: bytes) -> str:
    return blake3.blake3(data).hexdigest(8)


def _state_sum(state: dict[str, Any]) -> str:
    text = json.dumps(state, sort_keys=True, separators=(",", ":")).encode()
    return blake3.blake3(CUT_KEY + b"state\n" + text).hexdigest(16)


class _Grafts:
    """Where tonight's cut may jump to (``XmlChunker._graft``): a checkpoint
    of the night before taken inside an element with the start tag the cut
    just opened, if the bytes from that element's start to the checkpoint are
    tonight's too -- hashed from the spool a segment at a time against the
    night before's (``_graft_info``), the first PROBE bytes first.

    Like a resumed checkpoint, a state is used only when its hash holds (a
    damaged one is passed over); the bytes jumped over were checked
    well-formed the night before, and hash the same.
    """

    def __init__(
        self, spool: IO[bytes], size: int, points: list[list[Any]], info: dict[str, Any]
    ) -> None:
        self._spool = spool
        self._size = size
        self._points = points
        self._bounds = [int(b) for b in info["bounds"]]
        raw = bytes.fromhex(info["digests"])
        self._digests = [raw[i : i + 16] for i in range(0, len(raw), 16)]
        if len(self._digests) != max(0, len(self._bounds) - 1):
            raise ValueError("graft info: digests and bounds disagree")
        self._sums = {int(o): str(h) for o, h in info["sums"]}
        # start tag -> hash of the first PEEK bytes -> where such elements started
        self.tags: dict[bytes, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for start, tag, peek in info["tags"]:
            self.tags[bytes.fromhex(tag)][str(peek)].append(int(start))
        # an element's start -> (offset, point, depth) of the checkpoints inside it
        self._inside: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        for i, (offset, _seal, state) in enumerate(points):
            for depth, item in enumerate(state["stack"]):
                if _graftable(offset, depth, item):
                    self._inside[int(item["start"])].append((offset, i, depth))
        self._lines = (0, 0)  # line breaks before an offset, counted last

    @classmethod
    def load(
        cls, spool: IO[bytes], size: int, points: list[list[Any]], row: dict[str, Any]
    ) -> _Grafts | None:
        """The grafts a catalog row offers, or None (none, or damaged)."""
        info = row.get("grafts")
        if not isinstance(info, dict):
            return None
        try:
            grafts = cls(spool, size, points, info)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return grafts if grafts.tags else None

    def find(self, tag: bytes, start: int, fed: int) -> Graft | None:
        best: tuple[int, int, int, int] | None = None  # offset, start, point, depth
        peeks = self.tags.get(tag)
        if not peeks:
            return None
        pos = self._spool.tell()
        self._spool.seek(start)
        peek = _peek(self._spool.read(PEEK))
        self._spool.seek(pos)
        for old in peeks.get(peek, ()):
            inside = self._inside.get(old)
            if not inside:
                continue
            reach = self._same_until(old, inside[-1][0], start - old)
            for offset, i, depth in reversed(inside):
                if offset <= reach:
                    if best is None or offset - old > best[0] - best[1]:
                        best = (offset, old, i, depth)
                    break
        if best is None:
            return None
        offset, old, i, depth = best
        state = self._points[i][2]
        if self._sums.get(offset) != _state_sum(state):
            return None  # damaged in the catalog
        moved = offset + start - old
        every = max(TAIL_EVERY, (self._size - moved) // TAIL_POINTS + 1)
        return Graft(offset, old, state, depth, self._count_lines(moved), every)

    def _same_until(self, old: int, last: int, delta: int) -> int:
        """How far from ``old`` (up to ``last``) the night before's bytes are
        tonight's, ``delta`` on."""
        bounds = self._bounds
        first = bisect.bisect_left(bounds, old)
        if first == len(bounds) or bounds[first] != old or old + delta < 0:
            return old
        reach = old
        pos = self._spool.tell()
        try:
            for k, digest in enumerate(_segments(self._spool, bounds, first, delta), first):
                if bounds[k + 1] + delta > self._size or digest != self._digests[k]:
                    break
                reach = bounds[k + 1]
                if reach >= last:
                    break
        finally:
            self._spool.seek(pos)
        return reach

    def _count_lines(self, offset: int) -> int:
        """Line breaks in tonight's bytes before ``offset`` (grafts come in
        order: counted on from the last)."""
        at, n = self._lines
        if offset < at:
            at, n = 0, 0
        pos = self._spool.tell()
        try:
            self._spool.seek(at)
            while at < offset and (data := self._spool.read(min(READ_SIZE, offset - at))):
                n += data.count(b"\n")
                at += len(data)
        finally:
            self._spool.seek(pos)
        self._lines = (at, n)
        return n
