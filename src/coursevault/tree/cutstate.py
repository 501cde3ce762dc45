"""The cutter's state as data: the elements open at a point of a cut, and
the JSON-able form a checkpoint keeps them in.

The scanner (xmltree.py) builds and closes these; a resume
(``XmlChunker.resume``) and a graft (graft.py) rebuild them from a
checkpoint of another night.  One module says what an open element holds and
how it is written down, so the three agree on it -- and the checkpoint rows
in users' catalogs (sealed over this JSON, cutpoints.py) keep their shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coursevault.tree.listbuilder import RecordListBuilder
from coursevault.tree.sink import ObjectSink


class OpenElement:
    """An element being scanned."""

    __slots__ = (
        "cursor",
        "elements0",
        "gap",
        "head",
        "name",
        "nchild",
        "pieces",
        "records0",
        "run_at",
        "runs",
        "start",
    )

    def __init__(self, name: bytes, start: int) -> None:
        self.name = name
        self.start = start
        self.head = start  # the end of its start tag
        self.records0 = self.elements0 = 0  # the counts when it opened (grafting)
        self.cursor = start  # own bytes before this offset are in ``pieces``
        self.pieces: list[bytes] | None = None  # set once a child element opens
        self.runs: list[Run] = []
        self.gap = b""  # the parent's bytes between its previous cut and this element
        self.nchild = 0  # child elements opened so far
        self.run_at = -1  # nchild when the open run's last record ended


@dataclass
class Run:
    """An open element's run of sibling records, and the text between them."""

    builder: RecordListBuilder
    sep: bytes | None = None


def dump_open(el: OpenElement) -> dict[str, Any]:
    """An open element in its checkpoint form (see :func:`load_open`)."""
    return {
        "name": el.name.hex(),
        "start": el.start,
        "head": el.head,
        "records0": el.records0,
        "elements0": el.elements0,
        "cursor": el.cursor,
        "pieces": None if el.pieces is None else [p.hex() for p in el.pieces],
        "gap": el.gap.hex(),
        "nchild": el.nchild,
        "run_at": el.run_at,
        "runs": [
            {"sep": None if r.sep is None else r.sep.hex(), "list": r.builder.state()}
            for r in el.runs
        ],
    }


def load_open(sink: ObjectSink, item: dict[str, Any], delta: int) -> OpenElement:
    """An open element from its checkpoint form (:func:`dump_open`), its
    offsets moved by ``delta``.  Checkpoints written before elements kept
    their start tag's end or their counts read with defaults (no graft is
    taken from those: graft.graftable)."""
    el = OpenElement(bytes.fromhex(item["name"]), int(item["start"]) + delta)
    el.head = int(item.get("head", item["start"])) + delta
    el.records0 = int(item.get("records0", 0))
    el.elements0 = int(item.get("elements0", 0))
    el.cursor = int(item["cursor"]) + delta
    pieces = item["pieces"]
    el.pieces = None if pieces is None else [bytes.fromhex(p) for p in pieces]
    el.gap = bytes.fromhex(item["gap"])
    el.nchild = int(item["nchild"])
    el.run_at = int(item["run_at"])
    for run in item["runs"]:
        sep = None if run["sep"] is None else bytes.fromhex(run["sep"])
        el.runs.append(Run(RecordListBuilder.resume(sink, run["list"]), sep))
    return el


@dataclass
class Checkpoint:
    """The whole state of a cut just after an end tag: the first byte an
    open element still needs (``keep``), the bytes from there on, the
    prologue, the counts so far and the open elements, root first."""

    keep: int
    buf: bytes
    prologue: bytes
    records: int
    elements: int
    stack: Sequence[OpenElement]

    def dump(self) -> dict[str, Any]:
        """The JSON-able form a catalog row keeps (see :meth:`load`)."""
        return {
            "keep": self.keep,
            "buf": self.buf.hex(),
            "prologue": self.prologue.hex(),
            "records": self.records,
            "elements": self.elements,
            "stack": [dump_open(el) for el in self.stack],
        }

    @classmethod
    def load(cls, sink: ObjectSink, offset: int, state: dict[str, Any]) -> Checkpoint:
        """A checkpoint taken at ``offset`` from its :meth:`dump` form.  A
        state that does not fit raises ValueError (or KeyError, TypeError)."""
        keep = int(state["keep"])
        buf = bytes.fromhex(state["buf"])
        if keep + len(buf) != offset:
            raise ValueError("checkpoint: its bytes do not end at its offset")
        stack = [load_open(sink, item, 0) for item in state["stack"]]
        if not stack:
            raise ValueError("checkpoint: outside the root element")
        prologue = bytes.fromhex(state["prologue"])
        return cls(keep, buf, prologue, int(state["records"]), int(state["elements"]), stack)
