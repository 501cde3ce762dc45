"""Ctrl-C once a course's snapshot commits (an adversarial pass found it):
the snapshot was stored, yet the run log called the course failed
("interrupted") and the command never named it.  From the commit on, the
signal waits until the course's outcome is logged and told; then the run
stops as it would have (exit 130, or 143 for SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from .clirun import Result


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_at_commit_waits_for_the_course_to_be_logged_and_told(
    cv: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    signum: int, code: int,
) -> None:
    from coursevault.cli import app
    from coursevault.moodledb.demosite import build_demo_site
    from coursevault.store.session import WriteSession

    db, dataroot = tmp_path / "site.db", tmp_path / "data"
    courses = sorted(build_demo_site(f"sqlite:///{db}", dataroot, "S", courses=2).courses)
    commit = WriteSession.commit

    def signalled_commit(self: WriteSession, *args: object, **kwargs: object) -> object:
        os.kill(os.getpid(), signum)  # delivered before the commit's first write
        return commit(self, *args, **kwargs)

    monkeypatch.setattr(WriteSession, "commit", signalled_commit)
    # the console script's SIGTERM handler (app.run installs it)
    monkeypatch.setattr(app, "_TERMINATED", [])
    previous = signal.signal(signal.SIGTERM, app._terminate)
    try:
        run = cv("backup", "--db", f"sqlite:///{db}", "--dataroot", dataroot, "--all", "--json")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert run.code == code, run.err
    told = json.loads(run.out)
    assert [o["course_id"] for o in told] == courses[:1]  # the run stopped after it
    assert told[0]["outcome"] == "stored" and told[0]["snapshot"]
    monkeypatch.setattr(WriteSession, "commit", commit)
    snapshots = json.loads(cv("snapshots", "--json").out)
    assert [s["id"] for s in snapshots] == [told[0]["snapshot"]]
    runs = json.loads(cv("runs", "--json").out)
    assert [(r["outcome"], r["snapshot"]) for r in runs] == [("stored", told[0]["snapshot"])]
    assert cv("check").code == 0


def test_sigterm_while_the_modules_load_says_terminated(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGTERM before app.main stands (the console script still importing
    a backup's modules) unwound to the entry point, which said
    "interrupted" and exited 130."""
    from coursevault.cli import app, entry

    def terminated_while_loading() -> None:
        app._terminate(signal.SIGTERM, None)

    monkeypatch.setattr(app, "_TERMINATED", [])
    monkeypatch.setattr(app, "run", terminated_while_loading)
    with pytest.raises(SystemExit) as exited:
        entry.run()
    assert exited.value.code == 143
    assert capsys.readouterr().err == "coursevault: terminated\n"


def _sigint_disposition() -> str:
    return str(signal.getsignal(signal.SIGINT))


def test_workers_start_ignoring_ctrl_c_until_their_initializer_takes_it() -> None:
    """A ``--jobs`` worker still importing when Ctrl-C reached the
    terminal's process group printed a traceback of the import."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from coursevault.snapshot.dbbackup import submit_all

    before = signal.getsignal(signal.SIGINT)
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        futures = submit_all(pool, _sigint_disposition, [()])
        assert futures[0].result(timeout=60) == str(signal.SIG_IGN)
    assert signal.getsignal(signal.SIGINT) is before
