"""Grafting: a cut that jumps over what only moved since the night before.

A member changed near its top -- a quiz's grades, a few kB down quiz.xml,
change every night -- can be resumed from no checkpoint of the night
before, though the attempts below (most of the file) are the same bytes,
moved.  So when tonight's cut opens an element whose start tag an element
open at one of last night's checkpoints had, and the bytes from there to
the checkpoint are tonight's too, the cut jumps: last night's state from
that element down, its offsets moved, under tonight's elements above.

Why this is exact: the state of an element and of everything open inside it
depends only on the bytes since it opened; what it changes outside is
settled when its first child opens (its gap, its parent's cursor).  So the
state at the earlier checkpoint, its offsets moved and tonight's elements
above in place of that night's, is the state a cut of tonight's bytes would
reach there.

All of it is here: what the catalog row keeps for tomorrow
(:func:`graft_info`), how tonight finds a candidate and checks its bytes
(:class:`CheckpointGrafts`), and whether its state fits the element just
opened (:func:`fit_graft`).  The cutter (``XmlChunker._graft``) only asks,
and swaps the fitted state in for its own.
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections import defaultdict
from collections.abc import Container, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

import blake3

from coursevault.tree.cutpoints import CUT_KEY, READ_SIZE, tail_every
from coursevault.tree.cutstate import OpenElement, load_open
from coursevault.tree.sink import ObjectSink

# Only from elements open over at least MIN_GRAFT bytes before a checkpoint
# (smaller jumps would not pay for their checks).  A start tag without
# attributes (<posts>) opens many times, and most are other bytes: the
# candidates are those whose first PEEK bytes hash the same as tonight's,
# then checked over their first PROBE bytes.
MIN_GRAFT = 16 << 10
PEEK = 256
PROBE = 4096


@dataclass
class Graft:
    """Where a cut may jump to: a checkpoint of an earlier cut taken inside an
    element that opened at ``start`` with the start tag just opened tonight,
    whose bytes from ``start`` to ``offset`` are tonight's too (the
    :class:`GraftSource` checked)."""

    offset: int  # the checkpoint's offset in the earlier cut
    start: int  # where the element opened in the earlier cut
    state: dict[str, Any]  # the checkpoint's state (XmlChunker.checkpoint)
    depth: int  # the element's place in ``state["stack"]``
    lines: int  # line breaks before ``offset`` moved to tonight's place
    every: int = 0  # the checkpoints' spacing from there on (0: unchanged)


class GraftSource(Protocol):
    """What a cut asks, at each element it opens, for a place to jump to (see
    ``XmlChunker._graft``).  ``tags`` holds the start tags worth asking
    about; ``find`` gets the tag, where it starts, and how far the input has
    been fed."""

    @property
    def tags(self) -> Container[bytes]: ...

    def find(self, tag: bytes, start: int, fed: int) -> Graft | None: ...


@dataclass
class FittedGraft:
    """A graft's state, checked against the element just opened and moved
    to tonight's offsets and counts: what the cutter takes in place of its own."""

    frames: list[OpenElement]  # the element just opened and those open inside it
    keep: int  # the first byte they still need, tonight
    old: bytes  # the earlier night's bytes from ``keep`` to ``offset``
    offset: int  # where the cut goes on, tonight
    records: int  # records and elements the jump passes over
    elements: int
    lines: int
    every: int


def fit_graft(sink: ObjectSink, g: Graft, el: OpenElement) -> FittedGraft | None:
    """``g``'s state from the element at ``g.depth`` down, moved to where
    ``el`` opened tonight -- or None if it does not fit: another element,
    one without a child, bytes that do not end at the checkpoint, or a state
    this chunker cannot read (then the cut goes on)."""
    delta = el.start - g.start
    items = g.state["stack"][g.depth :]
    state = g.state
    try:
        frames = [load_open(sink, item, delta) for item in items]
        keep = int(state["keep"]) + delta
        old = bytes.fromhex(state["buf"])
        top = items[0]
        if (
            not frames
            or top["pieces"] is None
            or bytes.fromhex(top["name"]) != el.name
            or int(top["start"]) != g.start
            or keep < el.start
            or keep + len(old) != g.offset + delta
        ):
            return None
        records0, elements0 = int(top["records0"]), int(top["elements0"])
        records = int(state["records"]) - records0
        elements = int(state["elements"]) - elements0
    except (ValueError, KeyError, TypeError):
        return None  # a state this chunker cannot take: cut on
    for frame in frames:  # tonight's counts, for the checkpoints to come
        frame.records0 += el.records0 - records0
        frame.elements0 += el.elements0 - elements0
    return FittedGraft(frames, keep, old, g.offset + delta, records, elements, g.lines, g.every)


def graftable(offset: int, depth: int, item: dict[str, Any]) -> bool:
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


def known_segments(row: dict[str, Any], upto: int) -> dict[tuple[int, int], bytes]:
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


def graft_info(
    spool: IO[bytes], points: list[list[Any]], known: dict[tuple[int, int], bytes]
) -> dict[str, Any]:
    """What tomorrow's cut needs to graft from ``points`` (see
    :class:`CheckpointGrafts`): the start tags of the elements worth grafting
    from, hashes of the bytes between each one's start, PROBE bytes past it
    and the checkpoints taken inside it (those in ``known`` as they are),
    and a hash of each checkpoint's state."""
    heads: dict[int, int] = {}
    bounds: set[int] = set()
    for offset, _seal, state in points:
        for depth, item in enumerate(state["stack"]):
            if graftable(offset, depth, item):
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


class CheckpointGrafts:
    """Where tonight's cut may jump to (``XmlChunker._graft``, :class:`GraftSource`): a checkpoint
    of the night before taken inside an element with the start tag the cut
    just opened, if the bytes from that element's start to the checkpoint are
    tonight's too -- hashed from the spool a segment at a time against the
    night before's (:func:`graft_info`), the first PROBE bytes first.

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
                if graftable(offset, depth, item):
                    self._inside[int(item["start"])].append((offset, i, depth))
        self._lines = (0, 0)  # line breaks before an offset, counted last

    @classmethod
    def load(
        cls, spool: IO[bytes], size: int, points: list[list[Any]], row: dict[str, Any]
    ) -> CheckpointGrafts | None:
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
        every = tail_every(self._size, moved)
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
