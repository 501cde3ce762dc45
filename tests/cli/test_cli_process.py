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
    assert script.value == "coursevault.cli.entry:run"


def test_the_process_exits_with_the_commands_code(tmp_path: Path) -> None:
    assert run_process("--help").returncode == 0
    bad = run_process("no-such-command")
    assert bad.returncode == 2, bad.stderr
    missing = run_process("stats", "-r", str(tmp_path / "none"))
    assert missing.returncode == 10, missing.stderr
    assert missing.stderr.count("\n") == 1, missing.stderr
    (tmp_path / "a-file").write_text("")  # -r naming a file: no repository there either
    a_file = run_process("stats", "-r", str(tmp_path / "a-file"))
    assert a_file.returncode == 10 and "no repository" in a_file.stderr, a_file.stderr


def test_commands_are_built_when_named_as_typer_builds_them() -> None:
    """The root group builds a subcommand when it is named (cli/app.py,
    root_command): the same commands, in the same order, with the same
    options, as typer's own eager build -- and only the one that runs."""
    import typer

    from coursevault.cli.app import app, root_command

    eager = typer.main.get_command(app)
    assert root_command() is root_command()  # built once a process
    lazy = root_command.__wrapped__()  # a new one: earlier tests built others
    assert isinstance(eager, typer.core.TyperGroup)
    assert list(lazy.commands) == list(eager.commands)
    backup = lazy.commands["backup"]
    assert [p.name for p in backup.params] == [p.name for p in eager.commands["backup"].params]
    assert lazy.commands._built.keys() == {"backup"}  # type: ignore[attr-defined]
    index = lazy.commands["index"]
    assert list(index.commands) == list(eager.commands["index"].commands)  # type: ignore[attr-defined]


def test_the_command_line_loads_without_what_only_some_commands_need() -> None:
    """fastcdc (and the click it imports) loads when a file is chunked; the
    maintenance commands' modules when they run; SQLAlchemy when a catalog
    server or a Moodle database is opened (tests/store/test_catalog.py);
    the two doors, the archive readers and writers and the database restore
    when a command uses them (api.py: a third of ``log``'s start-up)."""
    code = (
        "import sys, coursevault.cli.app\n"
        "print(sorted(m for m in ('fastcdc', 'click', 'sqlalchemy', 'coursevault.store.check',"
        " 'coursevault.store.prune', 'coursevault.store.repair', 'coursevault.snapshot.ingest',"
        " 'coursevault.snapshot.dbbackup', 'coursevault.snapshot.source',"
        " 'coursevault.restore.dbrestore', 'coursevault.restore.export',"
        " 'coursevault.tree.archive_tree', 'lxml') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_backup_process_imports_its_modules_before_collecting() -> None:
    """``run`` imports what a ``backup`` will import with the collector off
    (cli/app.py, preload): the driver only for PostgreSQL, nothing for the
    other commands -- and every name given is a module that exists."""
    import importlib.util

    from coursevault.cli.app import preload

    assert preload(["stats", "-r", "repo"]) == ()
    postgres = preload(["-r", "repo", "backup", "--db", "postgresql+psycopg://h/db", "--all"])
    assert {"coursevault.definitions.run", "psycopg"} <= set(postgres)
    assert preload(["backup", "--db=postgresql://h/db"]) == postgres
    assert "psycopg" not in preload(["backup", "--db", "sqlite:///site.db", "--all"])
    assert all(importlib.util.find_spec(m) is not None for m in postgres)


def test_ctrl_c_while_the_cli_imports_is_one_line() -> None:
    """A Ctrl-C in the first few hundred ms (as the CLI's modules import)
    printed a traceback of the import, not 'coursevault: interrupted'."""
    code = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'coursevault.cli.app':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from coursevault.cli.entry import run\n"
        "run()\n"
    )
    done = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (130, "coursevault: interrupted\n")
