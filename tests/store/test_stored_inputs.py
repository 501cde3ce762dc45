"""A session's stored-input rows: spooled until commit, then written a batch
at a time (store/stored_inputs.py, Catalog.add_stored_inputs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from coursevault.errors import CatalogError
from coursevault.store import catalog as catalog_module
from coursevault.store.repository import Repository
from coursevault.store.stored_inputs import PendingInputs, StoredInput


def _committed(repo: Repository, *contents: bytes) -> tuple[str, list[bytes]]:
    """A committed snapshot reaching a tree of each of ``contents``."""
    with repo.writer() as w:
        trees = [w.put_tree([], c) for c in contents]
        root = w.put_tree(trees, b"root")
        snap = w.commit(
            {"course": "c", "time": "t", "epoch": 1.0, "root": root.hex(), "parents": []}
        )
    assert snap is not None
    repo.sync_catalog()
    return snap, trees


def test_pending_rows_come_back_in_order_as_the_catalog_takes_them() -> None:
    notes: dict[str, Any] = {"kind": "checkpoints", "points": [[1 << 20, "ab", {"s": [1]}]]}
    rows: list[StoredInput] = [
        (b"k" * 32, b"t" * 32, {"kind": "xml", "size": 9, "seal": "cd"}),
        (b"moodle-filedir-sha1:" + b"0" * 40, b"u" * 32, {"size": 0}),
        (b"k" * 32, b"v" * 32, notes),  # a key met again: both kept, in order
    ]
    with PendingInputs() as pending:
        assert not pending
        pending.extend(rows[:2])
        assert list(pending) == rows[:2]
        pending.append(rows[2])  # after a read: appended at the end all the same
        assert len(pending) == 3
        assert list(pending) == rows
        # encoded once, as the catalog keeps notes: not decoded to be encoded again
        assert [info for _k, _t, info in pending.encoded()] == [
            json.dumps(n, sort_keys=True) for _k, _t, n in rows]


def test_rows_are_written_a_batch_at_a_time_and_a_later_row_wins(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_module, "STORED_INPUTS_BATCH", 2)
    snap, (a, b, c) = _committed(repo, b"a", b"b", b"c")
    read: list[int] = []

    def rows() -> Iterator[StoredInput]:
        for i, row in enumerate([(b"k" * 32, a, {"n": 1}), (b"j" * 32, b, {"n": 2}),
                                 (b"i" * 32, c, {"n": 3}), (b"k" * 32, c, {"n": 4})]):
            read.append(i)
            yield row

    repo.stored_inputs.put(snap, rows())
    assert read == [0, 1, 2, 3]
    assert repo.stored_inputs.get(b"k" * 32) == (c, {"n": 4})  # its second batch's
    assert repo.stored_inputs.get(b"j" * 32) == (b, {"n": 2})
    assert repo.stored_inputs.get(b"i" * 32) == (c, {"n": 3})


def test_rows_that_fail_half_way_write_none(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One transaction: batches written before an error are rolled back."""
    monkeypatch.setattr(catalog_module, "STORED_INPUTS_BATCH", 1)
    snap, (a,) = _committed(repo, b"a")

    def rows() -> Iterator[StoredInput]:
        yield b"k" * 32, a, {"n": 1}
        yield b"j" * 32, a, {"n": 2}
        yield b"i" * 32, a, {"bad": object()}  # not JSON

    with pytest.raises(CatalogError):
        repo.stored_inputs.put(snap, rows())
    assert repo.stored_inputs.get(b"k" * 32) is None
    assert repo.stored_inputs.get(b"j" * 32) is None


def test_a_full_temporary_folder_is_named_not_an_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno

    from coursevault.errors import ScratchError

    with PendingInputs() as pending:
        spool = pending._spool  # the RecordSpool it writes through
        file = spool._file

        class Full:
            def seek(self, at: int, whence: int = 0) -> int:
                return at

            def write(self, data: bytes) -> int:
                raise OSError(errno.ENOSPC, "No space left on device")

            def close(self) -> None:
                file.close()

        monkeypatch.setattr(spool, "_file", Full())
        with pytest.raises(ScratchError, match=r"TMPDIR.*No space left"):
            pending.append((b"k" * 32, b"t" * 32, {"seal": "x"}))
