"""Damaged head refs: finding them (``check``) and rewriting them
(``repair refs``).

A head ref (docs/format.md §7, "Parents") holds the record of its course's
last commit, which the next writer publishes as a snapshot file if its
writer died first.  A damaged ref must therefore never be published, and
writers refuse it (``series._publish``); this module is the way back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coursevault.store.series import _encode_head, _read_head_key, head_key

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
    course has none.  Under the exclusive lock: no writer is between its
    swap and its snapshot file, so no commit is lost but one whose ref was
    damaged before its file was written -- which cannot be read back."""
    repo.sync_catalog()
    by_key = {head_key(series): series for series in repo.catalog.series_keys()}
    out = []
    for key, why in damaged_refs(repo):
        series = by_key.get(key)
        rows = repo.snapshots(series) if series is not None else []  # in history order
        if rows:
            repo.backend.write(key, _encode_head(rows[-1].id, None, None))
            repo.catalog.set_ref(f"heads/{series}", rows[-1].id)
            action = "rewritten"
        else:
            repo.backend.delete(key)
            action = "removed"
        out.append({"ref": key, "course": series, "damage": why, "action": action})
    return out
