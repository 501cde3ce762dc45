"""Output to a reader that went away (``coursevault ls ... | head -1``) is no error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CORPUS

SMALL = min(CORPUS, key=lambda p: p.stat().st_size)


def run_into_closed_pipe(*argv: str, code: str = "") -> subprocess.CompletedProcess[bytes]:
    """Run coursevault (or ``code``, Python that runs it) with stdout a pipe
    whose reader is already gone: its first write meets EPIPE, as under
    ``| head -1`` once head has its line."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    program = ["-c", code] if code else ["-m", "coursevault.cli.app"]
    try:
        return subprocess.run(
            [sys.executable, *program, *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.fixture
def snapshot(cv, tmp_path: Path) -> tuple[str, str]:
    repo = str(tmp_path / "repo")
    assert cv("init", repo).code == 0
    r = cv("ingest", "-r", repo, "--json", str(SMALL))
    assert r.code == 0, r.err
    return repo, str(json.loads(r.out)["snapshot"])


@pytest.mark.parametrize(
    "argv",
    [
        ["ls", "{snap}"],  # printed through rich
        ["snapshots", "--json"],  # printed as JSON
        ["cat", "{snap}", "moodle_backup.xml"],  # bytes
        ["snapshots"],  # a table (plain lines, not a terminal)
        ["export", "{snap}", "-o", "-"],  # an archive streamed (gzip in its own thread)
    ],
    ids=["ls", "json", "cat", "table", "export"],
)
def test_a_closed_pipe_exits_0_quietly(snapshot: tuple[str, str], argv: list[str]) -> None:
    repo, snap = snapshot
    done = run_into_closed_pipe("-r", repo, *(a.format(snap=snap) for a in argv))
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""


def test_forget_into_a_closed_pipe_carries_out_the_whole_policy(cv, tmp_path: Path) -> None:
    """``forget --all | head -1``: rich's console meets the broken pipe and
    exits; forget removed the first batch only and said nothing (batches of
    one row here, as a site's of 4,096)."""
    repo = str(tmp_path / "repo")
    assert cv("init", repo).code == 0
    for course in ("a", "b", "c"):
        for day in (1, 2):
            at = f"2026-01-0{day}T00:00"
            assert cv("ingest", "-r", repo, "--course", course, "--time", at, str(SMALL)).code == 0
    batches_of_one = (
        "import sys; from coursevault import api; api.FORGET_BATCH = 1; "
        "from coursevault.cli.app import main; sys.exit(main(sys.argv[1:]))"
    )
    done = run_into_closed_pipe(
        "forget", "-r", repo, "--all", "--keep-last", "1", code=batches_of_one
    )
    assert done.returncode == 0, done.stderr.decode()
    rows = json.loads(cv("snapshots", "-r", repo, "--json").out)
    assert sorted(r["course"] for r in rows) == ["a", "b", "c"]



def test_a_json_listing_cut_short_closes_its_source_before_returning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``snapshots --json | head -c 10`` on a site's repository: the pipe
    broke while the catalog's cursor was open, the listing was closed later
    by the garbage collector -- after the repository, on a closed database
    -- and Python printed "Exception ignored in: <generator ...>" and a
    traceback.  The listing must be closed as the error leaves the printer."""
    from coursevault.cli import output

    closed: list[bool] = []

    def listing():  # type: ignore[no-untyped-def]
        try:
            for n in range(100):
                yield {"n": n}
        finally:
            closed.append(True)

    class BrokenStdout:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", BrokenStdout())
    items = listing()
    next(items)  # the cursor is open
    with pytest.raises(BrokenPipeError):
        output.print_json_array(items)
    assert closed == [True]
