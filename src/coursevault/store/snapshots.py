"""Snapshot records: reading, listing, committing and deleting them.

Part of :class:`~coursevault.store.repository.Repository`.  A snapshot record
is a small JSON file under ``snapshots/<hh>/<id>`` (``snapshots/<id>`` in
repositories before format version 5; docs/format.md); its series' head ref
and the choice of its parent are ``series.py``'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import blake3

from coursevault.errors import CorruptionError, ObjectMissingError
from coursevault.store.backend import Backend
from coursevault.store.catalog import Catalog, SnapshotRow
from coursevault.store.diskcache import read_checked
from coursevault.store.ids import ObjectId, ObjectType, object_id
from coursevault.store.locks import Lock

if TYPE_CHECKING:
    from coursevault.store.repository import Repository
    from coursevault.store.series import SnapshotDraft


# The record's field holding its series key: the format names it "course".
SERIES_FIELD = "course"
# From this format version records sit in 256 subfolders by their first two
# hex digits: a site's 3.65 million a year in one folder would reach ext4's
# limit of a folder's entries (about 10 million) within three years.
FANOUT_VERSION = 5
_HEX64 = re.compile(r"[0-9a-f]{64}")


def fans_out(config: dict[str, Any]) -> bool:
    """Whether the repository of ``config`` keeps records in subfolders."""
    return int(config["version"]) >= FANOUT_VERSION


def snapshot_key(snap_id: str, fanout: bool) -> str:
    return f"snapshots/{snap_id[:2]}/{snap_id}" if fanout else f"snapshots/{snap_id}"


def listed_snapshot(key: str, fanout: bool) -> str | None:
    """The snapshot id a key listed under ``snapshots/`` is the record of in
    a repository of this layout; None for any other file (a stray one)."""
    parts = key.split("/")
    name = parts[-1]
    if not _HEX64.fullmatch(name):
        return None
    if fanout:
        return name if len(parts) == 3 and parts[1] == name[:2] else None
    return name if len(parts) == 2 else None


class SnapshotRecords:
    """The snapshot records of a repository over ``backend``, listed by ``catalog``."""

    backend: Backend
    catalog: Catalog
    config: dict[str, Any]

    @property
    def snapshot_fanout(self) -> bool:
        return fans_out(self.config)

    def record_key(self, snap_id: str) -> str:
        """Where the record of ``snap_id`` is, in this repository's layout."""
        return snapshot_key(snap_id, self.snapshot_fanout)

    def read_snapshot(self, snap_id: str) -> dict[str, Any]:
        try:
            data = read_checked(self.backend, self.record_key(snap_id),
                                lambda d: object_id(ObjectType.SNAPSHOT, d).hex() == snap_id)
        except FileNotFoundError:
            raise ObjectMissingError(snap_id, "no such snapshot") from None
        if object_id(ObjectType.SNAPSHOT, data).hex() != snap_id:
            raise CorruptionError(f"snapshot {snap_id} does not match its hash")
        try:
            record = json.loads(data)
            if not isinstance(record, dict) or "root" not in record or SERIES_FIELD not in record:
                raise ValueError("missing fields")
        except ValueError as exc:
            raise CorruptionError(f"snapshot {snap_id} is unreadable: {exc}") from exc
        return record

    def snapshots(self, series: str | None = None) -> list[SnapshotRow]:
        """Snapshots in history order (``series.history_order``): by time,
        an archive ingested again after the one it repeats."""
        from coursevault.store.series import history_order

        return history_order(self.catalog.snapshots(series))

    def iter_snapshots(self, series: str | None = None) -> Iterator[SnapshotRow]:
        """:meth:`snapshots` as a stream: history order only reorders
        snapshots of one series at one time (an archive ingested again), so
        only the times where that happened are held, one at a time -- not
        every snapshot of a night taken at the same time by a whole site:
        memory does not grow with the repository."""
        from coursevault.store.series import history_order

        tied = self.catalog.tied_epochs(series)
        tie: list[SnapshotRow] = []
        for row in self.catalog.iter_snapshots(series):
            if tie and row.epoch != tie[0].epoch:
                yield from history_order(tie)
                tie = []
            if row.epoch in tied:
                tie.append(row)
            else:
                yield row  # (epoch, id) is its place
        yield from history_order(tie)

    def commit_snapshot(self, draft: SnapshotDraft, lock: Lock) -> str:
        """Write a snapshot whose objects are indexed, choosing its parent and
        moving its series' head under compare-and-swap, for the writer
        holding ``lock`` (``store/series.py``)."""
        from coursevault.store.series import record_snapshot

        return record_snapshot(cast("Repository", self), draft, lock.key)

    def delete_series_snapshots(self, removals: list[tuple[str, list[str]]]) -> None:
        """Delete snapshots of several series (under the exclusive lock),
        ``(series, ids)`` pairs, with one journal entry for them all:
        ``forget --all`` on a site removes a snapshot of every course every
        night, and an entry a course was a journal file a course (160,000
        for a site of 160,000 courses, each read by every other catalog's
        next sync).  Heads first, then the entry, then the files
        (:meth:`delete_snapshot`'s order)."""
        from coursevault.store.catalog_sync import journal_files
        from coursevault.store.journal import SNAPSHOT
        from coursevault.store.series import drop_from_head

        for series, snap_ids in removals:
            for snap_id in snap_ids:
                drop_from_head(cast("Repository", self), series, snap_id)
        names = [snap_id for _series, snap_ids in removals for snap_id in snap_ids]
        if not names:
            return
        journal_files(cast("Repository", self), removed=[(SNAPSHOT, n) for n in names])
        for snap_id in names:
            self.backend.delete(self.record_key(snap_id))
        self.catalog.remove_snapshots(names)

    def delete_snapshot(self, snap_id: str) -> None:
        """Delete a snapshot (under the exclusive lock); its series' head ref
        stops naming it."""
        from coursevault.store.series import drop_from_head, head_series

        try:
            keys = [str(self.read_snapshot(snap_id)[SERIES_FIELD])]
        except (CorruptionError, ObjectMissingError):  # look in the catalog, then
            keys = [r.series for r in self.catalog.snapshots() if r.id == snap_id]
            if not keys:  # a damaged record no catalog read: any head may hold it
                keys = head_series(cast("Repository", self))
        from coursevault.store.catalog_sync import journal_files
        from coursevault.store.journal import SNAPSHOT

        for key in keys:  # first: a head naming it would publish it again
            drop_from_head(cast("Repository", self), key, snap_id)
        # journaled before it goes: no catalog keeps a snapshot that is gone
        journal_files(cast("Repository", self), removed=[(SNAPSHOT, snap_id)])
        self.backend.delete(self.record_key(snap_id))
        self.catalog.remove_snapshot(snap_id)


def snapshot_dictionary(record: dict[str, Any]) -> ObjectId | None:
    """The dictionary a snapshot record names for the next session, if it names
    a well-formed one (a damaged record only loses its dictionary)."""
    found = record.get("dictionary")
    if not isinstance(found, str) or len(found) != 64:
        return None
    try:
        return bytes.fromhex(found)
    except ValueError:
        return None


def row_digest(series: str, time: str, root: str, record_json: str) -> bytes:
    """What ``check`` compares a catalog's row with the snapshot file by:
    every column but ``epoch`` (a float, compared apart), the record as the
    catalog keeps it (``record_json``: sorted keys, as ``json.dumps``)."""
    return blake3.blake3("\0".join((series, time, root, record_json)).encode()).digest()


def snapshot_row(snap_id: str, record: dict[str, Any]) -> SnapshotRow:
    return SnapshotRow(
        snap_id,
        str(record[SERIES_FIELD]),
        str(record.get("time", "")),
        float(record.get("epoch", 0.0)),
        str(record["root"]),
        record,
    )
