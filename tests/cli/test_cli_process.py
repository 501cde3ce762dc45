"""The ``coursevault`` process: its entry point, its exit codes, what it imports."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path


def run_process(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coursevault.cli.app", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def test_the_console_script_is_run_not_main() -> None:
    """``run`` freezes the collector around ``main`` (cli/app.py); an
    installed script calling ``main`` would still work, only slower."""
    [script] = entry_points(group="console_scripts", name="coursevault")
    assert script.value == "coursevault.cli.app:run"


def test_the_process_exits_with_the_commands_code(tmp_path: Path) -> None:
    assert run_process("--help").returncode == 0
    bad = run_process("no-such-command")
    assert bad.returncode == 2, bad.stderr
    missing = run_process("stats", "-r", str(tmp_path / "none"))
    assert missing.returncode == 10, missing.stderr
    assert missing.stderr.count("\n") == 1, missing.stderr
