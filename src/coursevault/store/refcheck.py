"""Damaged head refs: finding them (``check``) and rewriting them
(``repair refs``).

A head ref (docs/format.md §7, "Parents") holds the record of its course's
last commit, which the next writer publishes as a snapshot file if its
writer died first.  A damaged ref must therefore never be published, and
writers refuse it (``series._publish``); this module is the way back.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from coursevault.errors import CorruptionError, ObjectMissingError
from coursevault.store.catalog_sync import journal_files
from coursevault.store.ids import ObjectType, object_id
from coursevault.store.journal import SNAPSHOT
from coursevault.store.series import LAST, _encode_head, _read_head_key, head_key
from coursevault.store.snapshots import snapshot_row

if TYPE_CHECKING:
    from coursevault.store.repository import Repository


def damaged_refs(repo: Repository) -> list[tuple[str, str]]:
    """(ref key, what is wrong with it) for every damaged head ref."""
    out = []
    for key, _size in repo.backend.list("refs/heads/"):
        head = _read_head_key(repo, key)
        if head.damaged:
            out.append((key, head.damaged))
    return out


def repair_refs(repo: Repository) -> list[dict[str, Any]]:
    """Rewrite every damaged head ref from the snapshots its course has (the
    newest, in history order, without a record), or delete it when the
    course has none.  A record the ref still holds whole (it hashes to its
    ``last`` line) is published first: its writer may have died before its
    snapshot file.  Under the exclusive lock: no writer is between its swap
    and its snapshot file, so what is lost is only a record that no longer
    reads back."""
    repo.sync_catalog()
    out = []
    for key, why in damaged_refs(repo):
        kept = _verified_record(repo, key)
        if kept is not None:  # its writer died before the file: the commit is kept
            _publish_record(repo, *kept)
        by_key = {head_key(series): series for series in repo.catalog.series_keys()}
        series = by_key.get(key)
        rows = repo.snapshots(series) if series is not None else []  # in history order
        if rows:
            repo.backend.write(key, _encode_head(rows[-1].id, None, None))
            repo.catalog.set_ref(f"heads/{series}", rows[-1].id)
            action = "rewritten"
        else:
            repo.backend.delete(key)
            action = "removed"
        out.append({"ref": key, "course": series, "damage": why, "action": action,
                    "kept": kept[0] if kept is not None else None})
    out += _restore_damaged_records(repo)
    return out


def _restore_damaged_records(repo: Repository) -> list[dict[str, Any]]:
    """A course's last commit whose snapshot file is damaged, written again
    from the copy its ref holds whole: the record was left out of every
    listing (``COURSE@latest`` quietly the night before) with nothing to
    mend it but ``forget``."""
    out = []
    for key, _size in repo.backend.list("refs/heads/"):
        kept = _verified_record(repo, key)
        if kept is None:
            continue
        snap_id, record = kept
        try:
            repo.read_snapshot(snap_id)
            continue
        except CorruptionError:
            pass  # damaged: written again below
        except ObjectMissingError:
            continue  # a writer died before it, or it was forgotten: not this repair's
        repo.backend.write(repo.record_key(snap_id), record)
        repo.sync_catalog()
        out.append({"ref": key, "course": snapshot_row(snap_id, json.loads(record)).series,
                    "damage": f"snapshot record {snap_id} is damaged",
                    "action": "record restored", "kept": snap_id})
    return out


def _verified_record(repo: Repository, key: str) -> tuple[str, bytes] | None:
    """The record a damaged ref still holds whole -- it hashes to the id
    its ``last`` line names, and names this ref's course -- as (id, bytes):
    damage elsewhere in the ref (its first line) must not lose a commit
    whose snapshot file its writer did not live to write."""
    try:
        raw = repo.backend.read(key)
    except (FileNotFoundError, CorruptionError):
        return None
    lines = raw.split(b"\n")
    record = next((ln for ln in lines[1:] if ln.startswith(b"{")), None)
    named = next((ln[len(LAST):].decode(errors="replace").strip()
                  for ln in lines[1:] if ln.startswith(LAST)), None)
    if record is None or named is None:
        return None
    if object_id(ObjectType.SNAPSHOT, record).hex() != named:
        return None
    try:
        row = snapshot_row(named, json.loads(record))
    except (KeyError, TypeError, ValueError):
        return None
    return (named, record) if head_key(row.series) == key else None


def _publish_record(repo: Repository, snap_id: str, record: bytes) -> None:
    if not repo.backend.exists(repo.record_key(snap_id)):
        repo.backend.write(repo.record_key(snap_id), record)
    journal_files(repo, added=[(SNAPSHOT, snap_id)])
    repo.sync_catalog()
