"""What writers remember about their inputs: an input's key -> the tree it
was stored as, with the writer's notes.

Why one named interface: a writer that would otherwise cut the same bytes
again (ingest, keyed by a hash of an XML member's bytes, and of its
checkpoints) asks here, and the store keeps the rows without knowing what
inputs are.  They live in the catalog's ``cv_stored_inputs`` table (a
cache, rebuilt empty); a row answers only while the snapshot whose session
stored its tree is in the catalog (see :meth:`Catalog.stored_input`).

A session's rows wait in a :class:`PendingInputs` spool until its snapshot
is committed: a night of a course of 4,000 XML members makes as many rows,
their checkpoints' points and grafts among them (4-5 MB of objects on the
demo M course), that memory would hold until commit for nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from coursevault.store.ids import ObjectId
from coursevault.store.spool import RecordSpool

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

    def put(self, snapshot: str, rows: Iterable[StoredInput]) -> None:
        """Remember ``rows`` of the session that committed ``snapshot`` (only
        once it has: the trees must be durable and indexed), replacing what
        their keys held; a later row of the same key wins.  ``rows`` is read
        once, as it comes: a :class:`PendingInputs` from its spool, its
        notes as they were encoded there."""
        if isinstance(rows, PendingInputs):
            self._catalog.add_stored_inputs(snapshot, rows.encoded())
        else:
            self._catalog.add_stored_inputs(snapshot, ((k, t, _encode(n)) for k, t, n in rows))


def _encode(notes: dict[str, Any]) -> str:
    """Notes as the catalog keeps them (it reads them back with json.loads)."""
    return json.dumps(notes, sort_keys=True)


class PendingInputs:
    """A session's rows, spooled to a temporary file as they are made and
    read back, in order, when its snapshot is committed (the module
    docstring says why).  Nothing reaches the catalog from here: the writer
    hands it to :meth:`StoredInputs.put` after commit, or closes it on
    abort and its rows are gone with the file."""

    def __init__(self) -> None:
        self._spool = RecordSpool("coursevault-inputs-")

    def __enter__(self) -> PendingInputs:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._spool.close()

    def __len__(self) -> int:
        return self._spool.count

    def append(self, row: StoredInput) -> None:
        """Spool one row, its notes encoded once, as the catalog keeps them."""
        key, tree, notes = row
        self._spool.append((key, tree, _encode(notes)))

    def extend(self, rows: Iterable[StoredInput]) -> None:
        for row in rows:
            self.append(row)

    def __iter__(self) -> Iterator[StoredInput]:
        """The rows in the order they were added, read back a row at a time
        (those added while this runs are not read)."""
        for key, tree, info in self.encoded():
            yield key, tree, json.loads(info)

    def encoded(self) -> Iterator[tuple[bytes, ObjectId, str]]:
        """The rows as :meth:`__iter__` reads them, their notes left encoded
        (for the catalog: not decoded to be encoded again)."""
        yield from self._spool  # (key, tree, info) as append spooled them
