"""What writers remember about their inputs: an input's key -> the tree it
was stored as, with the writer's notes.

Why one named interface: a writer that would otherwise cut the same bytes
again (ingest, keyed by a hash of an XML member's bytes, and of its
checkpoints) asks here, and the store keeps the rows without knowing what
inputs are.  They live in the catalog's ``cv_stored_inputs`` table (a
cache, rebuilt empty); a row answers only while the snapshot whose session
stored its tree is in the catalog (see :meth:`Catalog.stored_input`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coursevault.store.ids import ObjectId

if TYPE_CHECKING:
    from coursevault.store.catalog import Catalog

# (input key, id of the tree it was stored as, the writer's notes)
StoredInput = tuple[bytes, ObjectId, dict[str, Any]]


class StoredInputs:
    """The store's memory of what inputs were stored as, for writers."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def get(self, key: bytes) -> tuple[ObjectId, dict[str, Any]] | None:
        """The tree ``key`` was stored as and its notes, if a snapshot still
        vouches for the tree being whole."""
        return self._catalog.stored_input(key)

    def put(self, snapshot: str, rows: Sequence[StoredInput]) -> None:
        """Remember ``rows`` of the session that committed ``snapshot`` (only
        once it has: the trees must be durable and indexed), replacing what
        their keys held."""
        self._catalog.add_stored_inputs(snapshot, rows)
