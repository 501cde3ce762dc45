"""The command line run in-process, for fixtures that outlive one test.

tests/dbbackup's ``cv`` fixture captures through ``capsys``, which only a
test's own fixtures may use; a round trip shared by a module's tests (one
restore per course, asserted on many times) captures with
``redirect_stdout`` instead.  The CLI's consoles look ``sys.stdout`` up when
they print, so they follow the redirection.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from dbbackup.clirun import Result

from coursevault.cli.app import main


def run(*argv: str | Path | int) -> Result:
    """``coursevault ARGV``: its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return Result(code, out.getvalue(), err.getvalue())


def run_json(*argv: str | Path | int) -> Any:
    """``coursevault ARGV --json``'s output; a failure fails the test with
    what the command said."""
    result = run(*argv, "--json")
    if result.code != 0:
        raise AssertionError(f"coursevault {' '.join(map(str, argv))}: {result}")
    return json.loads(result.out)


def refused_both_ways(repo: str | Path, selector: str, url: str, dataroot: str | Path,
                      said: str) -> None:
    """``restore SELECTOR`` into the site, with ``--dry-run`` and without:
    each exit 2, one line saying ``said`` (the caller checks the site is
    as it was)."""
    for dry_run in (("--dry-run",), ()):
        result = run("-r", repo, "restore", selector, "--db", url, "--dataroot", dataroot,
                     *dry_run)
        assert result.code == 2, result
        assert said in result.err and len(result.err.strip().splitlines()) == 1, result
