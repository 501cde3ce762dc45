"""What ingest may take from the catalog's rows of what an XML member's
bytes were stored as, and its last check before committing (issue 20).

A row (``repo.stored_inputs``: the member's hash -> the tree, notes) spares
cutting a member an earlier night stored, but the catalog is a cache on a
user's disk: a row whose tree or notes were swapped for another row's once
made ingest exit 0, check clean, and commit a snapshot whose files.xml
export refused ("wrote 5062 bytes, header says 9490").  So a row carries
what proves it -- the member's size and a seal over the member's hash, the
tree and the notes -- and one that fails is passed over, the member cut
afresh; and before committing, ingest compares each member's tree's length,
read from node metadata, with the member's size, whatever went wrong.
"""

from __future__ import annotations

import json
from typing import Any

import blake3

from coursevault.errors import CorruptionError
from coursevault.store.ids import ObjectId
from coursevault.tree.archive_tree import content_length
from coursevault.tree.nodes import Getter, NodeFormatError, document_has_length

# What a row's seal is keyed with: change it if the seal changes shape.
SEAL_KEY = b"coursevault stored member row 1\n"


def row_seal(key: bytes, tree: ObjectId, notes: dict[str, Any]) -> str:
    """A hash of the member's bytes' hash (the row's key), the tree they
    were stored as and the notes (all but the seal): a row whose tree or
    notes were swapped for another row's, or damaged, no longer matches."""
    rest = {k: v for k, v in notes.items() if k != "seal"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()
    return blake3.blake3(SEAL_KEY + key + tree + text).hexdigest()


def seal_row(
    key: bytes, tree: ObjectId, notes: dict[str, Any]
) -> tuple[bytes, ObjectId, dict[str, Any]]:
    """A member's row for the catalog, sealed (see :func:`row_seal`)."""
    return key, tree, {**notes, "seal": row_seal(key, tree, notes)}


def row_holds(key: bytes, found: tuple[ObjectId, dict[str, Any]], size: int) -> bool:
    """Whether a member's row may be taken: a stored tree of ``size`` bytes,
    sealed.  (Rows written before rows were sealed are not: their member is
    cut once more, and the row written again, sealed.)"""
    tree, notes = found
    return (
        notes.get("kind") in ("xml", "raw")
        and notes.get("size") == size
        and notes.get("seal") == row_seal(key, tree, notes)
    )


def _names_length(get: Getter, content: ObjectId, size: int, where: str) -> bool:
    """The one-read check of an XML member's tree (nodes.document_has_length)."""
    try:
        return document_has_length(get, content, size)
    except (NodeFormatError, ValueError, IndexError) as exc:
        raise CorruptionError(f"{where}: its stored tree is malformed: {exc}") from exc


def check_stored_length(
    get: Getter, content: ObjectId | None, kind: str, size: int, where: str
) -> None:
    """Raise :class:`CorruptionError` unless a member's stored content
    renders to ``size`` bytes, its size in the archive -- read from node
    metadata, not rendered (archive_tree.content_length): the last line of
    defence before a snapshot is committed.  Costs one small read an XML
    member (its ``D`` node, whose length blob's id is compared), two when
    that says no and the error names the stored length.
    """
    if content is None:
        stored: int | None = 0
    elif kind == "xml" and _names_length(get, content, size, where):
        return
    else:
        try:
            stored = content_length(get, content, kind)
        except (NodeFormatError, ValueError, IndexError) as exc:
            raise CorruptionError(f"{where}: its stored tree is malformed: {exc}") from exc
    if stored != size:
        what = "a tree of unknown length" if stored is None else f"{stored} bytes"
        raise CorruptionError(f"{where}: stored as {what}, not {size}: nothing committed")
