"""Progress on long work: a bar on stderr for a person at a terminal, nothing otherwise.

The terminal is a pseudo-terminal (``os.openpty``) given to the command as
its stderr; rich draws each frame, then erases the bar (the last frame is in
the stream all the same), so the assertions do not depend on timing.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CORPUS

from coursevault import api

# a small course that starts with .ARCHIVE_INDEX (the bar knows its total), and
# one that does not (6 MiB, ~300 members)
SOURCE = next(p for p in CORPUS if "coderunner" in p.name)
UNLISTED = next(p for p in CORPUS if "moodle2cc" in p.name)


def run_on_a_terminal(*argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, what the terminal on stderr received) of a coursevault run."""
    master, slave = os.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    for var in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(var, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "coursevault.cli.app", *argv],
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(slave)
    received = bytearray()
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end (it exited)
            break
        if not data:
            break
        received += data
    os.close(master)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out.decode(), received.decode("utf-8", "replace")


@pytest.fixture
def repo(cv, tmp_path: Path) -> str:
    path = str(tmp_path / "repo")
    assert cv("init", path).code == 0
    return path


def test_progress_shows_on_a_terminal_and_the_commands_succeed(
    cv, repo: str, tmp_path: Path
) -> None:
    code, out, tty = run_on_a_terminal("ingest", "-r", repo, str(SOURCE))
    assert code == 0, tty
    assert out.startswith("snapshot ") and "\x1b" not in out  # stdout is untouched
    assert f"ingest {SOURCE.name}" in tty and "KiB" in tty and "━" in tty
    snap = json.loads(cv("snapshots", "-r", repo, "--json").out)[0]["id"]

    code, out, tty = run_on_a_terminal("export", "-r", repo, snap, "-o", str(tmp_path / "x.mbz"))
    assert code == 0, tty
    assert out.startswith("wrote ") and "export x.mbz" in tty and "KiB" in tty

    code, out, tty = run_on_a_terminal("check", "-r", repo, "--read-data")
    assert code == 0, tty
    assert out.startswith("checked ") and "check" in tty and "1/1 packs" in tty

    assert cv("forget", "-r", repo, "--all", "--keep-last", "1").code == 0
    code, out, tty = run_on_a_terminal("prune", "-r", repo)
    assert code == 0, tty
    assert out.startswith("freed ") and "prune: " in tty


def test_no_progress_with_json_even_on_a_terminal(cv, repo: str, tmp_path: Path) -> None:
    code, out, tty = run_on_a_terminal("ingest", "-r", repo, "--json", str(SOURCE))
    assert code == 0 and json.loads(out)["members"] > 0
    assert tty == ""
    snap = json.loads(out)["snapshot"]
    for argv in (
        ["export", "-r", repo, snap, "-o", str(tmp_path / "x.mbz"), "--json"],
        ["check", "-r", repo, "--read-data", "--json"],
        ["--json", "prune", "-r", repo],
    ):
        code, out, tty = run_on_a_terminal(*argv)
        assert code == 0 and json.loads(out), argv
        assert tty == "", argv


def test_no_progress_when_stderr_is_not_a_terminal(cv, repo: str, tmp_path: Path) -> None:
    """A nightly job's log or mail gets the result lines, not progress (prune
    used to print its steps there)."""
    r = cv("ingest", "-r", repo, str(SOURCE))
    assert r.code == 0 and r.err == ""
    assert len(r.out.splitlines()) == 1
    snap = json.loads(cv("snapshots", "-r", repo, "--json").out)[0]["id"]
    for argv in (
        ["export", "-r", repo, snap, "-o", str(tmp_path / "x.mbz")],
        ["check", "-r", repo, "--read-data"],
        ["forget", "-r", repo, "--all", "--keep-last", "1"],
        ["prune", "-r", repo],
        ["prune", "-r", repo, "--dry-run"],
    ):
        r = cv(*argv)
        assert r.code == 0 and r.err == "", (argv, r.err)


def test_the_api_reports_ingest_progress_against_what_the_archive_lists(
    repo: str, cache: Path, tmp_path: Path
) -> None:
    calls: list[tuple[int, int]] = []
    with api.open_repository(repo, cache_dir=str(cache)) as opened:
        result = api.ingest(opened, str(SOURCE), progress=lambda d, t: calls.append((d, t)))
        packs: list[tuple[int, int]] = []
        api.check(opened, read_data=True, progress=lambda d, t: packs.append((d, t)))
        exported: list[tuple[int, int]] = []
        api.export(
            opened,
            result.snapshot,
            str(tmp_path / "x.mbz"),
            progress=lambda d, t: exported.append((d, t)),
        )
    # every member reported; the total known from the start (.ARCHIVE_INDEX)
    assert len(calls) >= result.members
    assert {t for _d, t in calls} == {result.bytes_read}
    assert calls[-1][0] == result.bytes_read
    assert [d for d, _t in calls] == sorted(d for d, _t in calls)
    assert packs and packs[-1][0] == packs[-1][1]
    assert exported and exported[-1][0] == exported[-1][1] > 0

    unlisted: list[tuple[int, int]] = []  # an archive without an index: total 0, unknown
    with api.open_repository(repo, cache_dir=str(cache)) as opened:
        api.ingest(opened, str(UNLISTED), progress=lambda d, t: unlisted.append((d, t)))
    assert len(unlisted) > 100 and {t for _d, t in unlisted} == {0}


def test_a_name_in_the_bar_is_printed_as_it_is_not_as_markup(
    cv, repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bar's description names the archive (ingest) or the course's
    shortname from the site's database (backup): a shortname "bad[/]name"
    made every backup on a terminal an internal error (rich's MarkupError),
    and "[bold]" in a name vanished from the bar."""
    named = tmp_path / "night [bold]2.mbz"
    named.write_bytes(SOURCE.read_bytes())
    code, _out, tty = run_on_a_terminal("ingest", "-r", repo, str(named))
    assert code == 0, tty
    assert "ingest night [bold]2.mbz" in tty

    from rich.console import Console

    from coursevault.cli import output

    terminal = io.StringIO()
    monkeypatch.setitem(output._CONSOLES, "err", Console(file=terminal, force_terminal=True))
    with output.progress_bar("backup course 2 bad[/]name", enabled=True) as bar:
        assert bar is not None
        bar(1, 2)
    with output.progress_steps("prune", enabled=True) as step:
        assert step is not None
        step("[/x]")
    assert "bad[/]name" in terminal.getvalue() and "prune: [/x]" in terminal.getvalue()
