"""The ``coursevault`` command: typer commands that parse, call coursevault.api, print.

Exit codes: 0 success (also when the reader of stdout went away: ``| head``);
1 failure (including corruption found by ``check``); 2 bad input or usage;
10 no repository; 11 repository locked; 12 an encrypted repository's
missing or wrong passphrase; 13 a Moodle site that cannot be read
(database unreachable, not Moodle 4.5, no file store); 130 interrupted
(Ctrl-C); 143 terminated (SIGTERM), cleaned up as Ctrl-C is.  Errors are one
line on stderr; ``--debug`` (or COURSEVAULT_DEBUG=1) shows the traceback.
"""

import contextlib
import copy
import functools
import gc
import importlib
import os
import signal
import sys
import traceback
from collections.abc import Iterator, MutableMapping
from types import FrameType
from typing import Any

import typer
from typer.core import TyperGroup

from coursevault import api
from coursevault.cli import output
from coursevault.cli.base import app, optional_wait_value
from coursevault.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    CoursevaultError,
)

# The command modules register their commands on ``app`` when imported; this
# order is the order of ``coursevault --help``.
_COMMANDS = ("repo_commands", "key_commands", "snapshot_commands", "database_commands",
             "restore_commands", "moodle_commands", "sync_commands")
for _module in (*_COMMANDS, "history_commands"):
    importlib.import_module(f"coursevault.cli.{_module}")
__all__ = ["app", "main", "run"]


def run() -> None:
    """The ``coursevault`` process (the console script): :func:`main`, then exit.

    Both ends skip work the garbage collector would redo for nothing.  The
    objects the imports made (typer's, the store's, later SQLAlchemy's: some
    100,000) live as long as the process, yet every full collection walks
    them again, and the interpreter runs one last full collection as it
    exits -- 0.1 s of a 1 s database backup.  ``gc.freeze()`` moves what
    exists into a generation no collection visits: once after the imports,
    and once more when the command is done, when nothing it made is left to
    a collector -- files, repositories and connections are closed by their
    own ``with`` blocks before :func:`main` returns, and what is still open
    is closed as its last reference goes, frozen or not.  Only the process
    does this: :func:`main` called from Python (tests, scripts) leaves the
    collector alone.

    The modules a command imports only when it runs (:func:`preload`) are
    imported first, with the collector off: importing SQLAlchemy, psycopg
    and the backup definitions set off some 100 collections, each walking
    the young objects the imports made, which are never garbage (0.04 s of
    a backup's CPU).

    A backup also holds glibc's allocator to fixed thresholds
    (:mod:`coursevault.allocator`): the memory its big buffers leave
    behind in the heap grew with the course.
    """
    signal.signal(signal.SIGTERM, _terminate)
    if "backup" in sys.argv[1:]:
        api.allocator_for_backup()
    gc.disable()
    try:
        for module in preload(sys.argv[1:]):
            # a module that fails here fails again in the command, which says why
            with contextlib.suppress(Exception):
                importlib.import_module(module)
    finally:
        gc.freeze()
        gc.enable()
    code = main()
    gc.freeze()
    sys.exit(code)


def preload(args: list[str]) -> tuple[str, ...]:
    """What the command named in ``args`` would import when it runs:
    ``backup`` its definitions and SQLAlchemy, and the PostgreSQL driver
    when ``--db`` names PostgreSQL.  Nothing for any other command."""
    if "backup" not in args:  # (a file named so only costs the imports)
        return ()
    modules: tuple[str, ...] = ("coursevault.definitions.run", "coursevault.moodledb.site",
               "coursevault.snapshot.dbsource")
    for i, arg in enumerate(args):
        url = args[i + 1] if arg == "--db" and i + 1 < len(args) else arg.removeprefix("--db=")
        if (arg == "--db" or arg.startswith("--db=")) and url.startswith("postgres"):
            modules += ("psycopg", "sqlalchemy.dialects.postgresql.psycopg")
    return modules


_TERMINATED: list[int] = []


def _terminate(_signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds the command as Ctrl-C does: the write session
    cleans up (its pending-index file in TMPDIR, the open pack's spill) and
    the lock is released; by default the process died where it stood,
    leaving a 6 MB temporary file and a lock behind.

    Python drops an exception raised in a finalizer ("Exception ignored in
    ... __del__"): a SIGTERM landing in one (a spooled file's, at a
    garbage collection) was lost and the command ran on to its end, exit 0.
    There it is sent again a moment later instead."""
    _TERMINATED.append(1)
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            import threading

            again = threading.Timer(0.05, _terminate_again)
            again.daemon = True
            again.start()
            return
        frame = frame.f_back
    raise KeyboardInterrupt


def _terminate_again() -> None:
    """SIGTERM to this process once more -- while it still means "unwind":
    by default it kills at once (a caller that put its own handler back,
    as a test does, would die of it)."""
    if signal.getsignal(signal.SIGTERM) is _terminate:
        os.kill(os.getpid(), signal.SIGTERM)


def _interrupted() -> int:
    if _TERMINATED:
        output.err.print("coursevault: terminated")
        return EXIT_TERMINATED
    output.err.print("coursevault: interrupted")
    return EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn every error into one line and an exit code."""
    args = optional_wait_value(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("COURSEVAULT_DEBUG") == "1"
    command = root_command()
    try:
        rv = command.main(args=args, prog_name="coursevault", standalone_mode=False)
        if isinstance(rv, int):  # click returns a typer.Exit's code instead of raising it
            if rv == EXIT_INTERRUPTED:  # typer turns Ctrl-C into Exit(130), in silence
                return _interrupted()
            return rv
    except typer.Exit as exc:
        return int(exc.exit_code)
    except BrokenPipeError:
        return _reader_went_away()
    except SystemExit as exc:
        # click (typer/_click) turns EPIPE into sys.exit(1), and so does rich's
        # console: the exit is raised while handling the BrokenPipeError
        if isinstance(exc.__context__, BrokenPipeError):
            return _reader_went_away()
        raise
    except (typer.Abort, KeyboardInterrupt):
        return _interrupted()
    except CoursevaultError as exc:
        if debug:
            traceback.print_exc()
        output.error(str(exc))
        return exc.exit_code
    except Exception as exc:
        # typer vendors click; its usage errors all carry format_message()
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            message = exc.format_message()
            if message:  # empty for "no arguments: help was shown"
                output.error(message)
            return EXIT_BAD_INPUT
        if debug:
            traceback.print_exc()
        output.error(
            f"{type(exc).__name__}: {exc} (run with --debug for details)", "internal error"
        )
        return EXIT_FAILURE
    return 0


@functools.cache
def root_command() -> TyperGroup:
    """The click group of ``app``, whose subcommands are built when asked for.

    typer builds every command up front, reading each function's signature
    and type hints: 0.05 s a run for twenty commands, of which one runs.
    The group is built here without them, and :class:`_CommandsOnDemand`
    gives it each one as typer would have built it, the first time it is
    named (``--help`` lists, and so builds, them all).  Built once a
    process: a script (or a test) calling ``main`` again and again read
    the command's type hints each time.
    """
    bare = copy.copy(app)
    bare.registered_commands, bare.registered_groups = [], []
    root = typer.main.get_command(bare)
    if not isinstance(root, TyperGroup):
        raise TypeError(f"the root command is a {type(root).__name__}, not a group")
    root.commands = _CommandsOnDemand(app)
    return root


class _CommandsOnDemand(MutableMapping[str, Any]):
    """A group's commands by name, in typer's order (commands, then sub-apps),
    each built by typer's own functions when first looked up."""

    def __init__(self, typer_app: typer.Typer) -> None:
        self._app = typer_app
        self._infos: dict[str, Any] = {}
        for info in typer_app.registered_commands:
            callback = info.callback
            name = info.name or typer.main.get_command_name(getattr(callback, "__name__", ""))
            self._infos[name] = info
        for group in typer_app.registered_groups:
            if not isinstance(group.name, str):
                raise TypeError("every sub-app of the coursevault command has a name")
            self._infos[group.name] = group
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            info = self._infos[name]
            short, markup = self._app.pretty_exceptions_short, self._app.rich_markup_mode
            if isinstance(info, typer.models.CommandInfo):
                self._built[name] = typer.main.get_command_from_info(
                    info, pretty_exceptions_short=short, rich_markup_mode=markup
                )
            else:
                self._built[name] = typer.main.get_group_from_info(
                    info,
                    pretty_exceptions_short=short,
                    rich_markup_mode=markup,
                    suggest_commands=self._app.suggest_commands,
                )
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._infos.setdefault(name, None)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._infos[name]
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)


def _reader_went_away() -> int:
    """Stop quietly with 0 when the reader of stdout went away.

    ``coursevault ls ... | head -1`` is a success once head has what it
    wanted; a shell reports 141 (SIGPIPE) for such a command, but a script
    testing the exit status would take that for a failure, and the output it
    asked for was all written.  Later writes (Python's own flush at exit) go to
    /dev/null instead of raising again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


if __name__ == "__main__":
    run()
