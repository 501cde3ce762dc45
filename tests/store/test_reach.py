"""The reachability walker check and prune share (store/reach.py)."""

from __future__ import annotations

import pytest

from coursevault.errors import ObjectMissingError
from coursevault.store.ids import ObjectId, ObjectType, object_id
from coursevault.store.objecttable import ObjectTable
from coursevault.store.reach import Reach
from coursevault.store.repository import Repository


def stored_tree(repo: Repository, missing: ObjectId) -> tuple[ObjectId, ObjectId, ObjectTable]:
    """A root naming a blob, a subtree (naming the blob again) and ``missing``."""
    with repo.writer() as w:
        blob = w.put(ObjectType.BLOB, b"content")
        sub = w.put_tree([blob], b"sub")
        root = w.put_tree([blob, sub, missing], b"root")
        w.commit()
    repo.sync_catalog()
    entries = [e for name in repo.catalog.index_files() for e in repo.read_index(name)]
    return root, sub, ObjectTable(entries)


def test_trees_marks_each_object_once_and_reports_a_missing_one_once(repo: Repository) -> None:
    missing = object_id(ObjectType.BLOB, b"never stored")
    root, sub, table = stored_tree(repo, missing)
    met: list[tuple[ObjectId, str]] = []
    reach = Reach(repo, table, lambda oid, by: met.append((oid, by)))
    reach.trees([root], "snapshot a", 1)
    reach.trees([root, sub], "snapshot b", 1)  # met before: nothing new
    assert met == [(missing, "snapshot a")]
    assert reach.count == 4 and reach.unindexed == {missing}
    assert all(table.marks[r] & 1 for r in range(len(table)))


def test_a_raising_handler_stops_the_walk(repo: Repository) -> None:
    missing = object_id(ObjectType.BLOB, b"never stored")
    root, _sub, table = stored_tree(repo, missing)

    def stop(oid: ObjectId, needed_by: str) -> None:
        raise ObjectMissingError(oid.hex(), f"needed by {needed_by}")

    with pytest.raises(ObjectMissingError, match="needed by snapshot a"):
        Reach(repo, table, stop).trees([root], "snapshot a", 1)
