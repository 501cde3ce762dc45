"""``snapshots --json`` streamed from the catalog (issue 26): the same rows
in the same history order as the list, in memory that does not grow with
the repository."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from coursevault import api
from coursevault.cli.app import main
from coursevault.store.catalog import SnapshotRow


def fake_rows(repo, n: int, *, record_bytes: int = 2000, one_night: bool = False) -> None:
    """``n`` catalog rows of 40 courses, some sharing a time (history order
    then looks at parents), each with a record of about ``record_bytes``."""
    pad = "x" * record_bytes
    prev: dict[str, str] = {}
    for i in range(n):
        course = f"c{i}" if one_night else f"c{i % 40}"
        snap_id = f"{n - i:064x}"  # a child's id sorts before its parent's
        # two snapshots of a course per time; or a site's night: one time
        epoch = 1000.0 if one_night else float(1000 + i // 80)
        record = {
            "course": course,
            "root": "00" * 32,
            "parents": [prev[course]] if course in prev else [],
            "source": {"file": pad},
        }
        repo.catalog.add_snapshot(SnapshotRow(snap_id, course, "t", epoch, "00" * 32, record))
        prev[course] = snap_id


def test_stream_is_the_list_in_history_order(repo) -> None:
    fake_rows(repo, 400, record_bytes=10)
    listed = [r.id for r in repo.snapshots()]
    assert [r.id for r in repo.iter_snapshots()] == listed
    assert [r.id for r in repo.iter_snapshots("c3")] == [r.id for r in repo.snapshots("c3")]
    # of one course's two snapshots of a time, the parent comes first
    # although its id sorts after the child's
    rows = {r.id: r for r in repo.snapshots()}
    for pos, snap_id in enumerate(listed):
        for parent in rows[snap_id].record["parents"]:
            assert listed.index(parent) < pos
    assert any(
        rows[p].epoch == rows[c].epoch and p > c for c in listed for p in rows[c].record["parents"]
    )
    assert api.list_snapshots(repo) == list(api.iter_snapshots(repo))


@pytest.mark.parametrize("one_night", [False, True])
def test_stream_memory_does_not_grow_with_the_repository(repo, one_night) -> None:
    """Also when a whole site's courses share one time (a tie history order
    need not reorder: only a course's own ties are held)."""
    fake_rows(repo, 3000, one_night=one_night)

    def peak(use_stream: bool) -> int:
        tracemalloc.start()
        if use_stream:
            for _row in api.iter_snapshots(repo):
                pass
        else:
            api.list_snapshots(repo)
        _now, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    listed, streamed = peak(False), peak(True)
    assert listed > 6_000_000  # 3,000 records of 2 kB, held at once
    assert streamed < listed / 4  # a batch of rows at most


def test_cli_snapshots_json_streams_the_same_bytes(
    repo, backend, cache_dir, capsys, helpers
) -> None:
    for i in range(3):
        helpers.make_snapshot(repo, 2, seed=i, course=f"c{i}", epoch=1000.0 + i)
    capsys.readouterr()
    code = main(["snapshots", "--json", "-r", str(backend.root), "--cache-dir", str(cache_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert out == json.dumps(api.list_snapshots(repo), indent=None, default=str) + "\n"
    assert [row["course"] for row in json.loads(out)] == ["c0", "c1", "c2"]
    code = main(
        [
            "snapshots",
            "--json",
            "--course",
            "nope",
            "-r",
            str(backend.root),
            "--cache-dir",
            str(cache_dir),
        ]
    )
    assert code == 0 and capsys.readouterr().out == "[]\n"
