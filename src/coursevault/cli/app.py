"""The ``coursevault`` command: typer commands that parse, call coursevault.api, print.

Exit codes: 0 success; 1 failure (including corruption found by ``check``);
2 bad input or usage; 10 no repository; 11 repository locked.  Errors are one
line on stderr; ``--debug`` (or COURSEVAULT_DEBUG=1) shows the traceback.
"""

import importlib
import os
import sys
import traceback

import typer

from coursevault.cli import output
from coursevault.cli.base import app
from coursevault.errors import EXIT_BAD_INPUT, EXIT_FAILURE, CoursevaultError

# The command modules register their commands on ``app`` when imported; this
# order is the order of ``coursevault --help``.
for _module in ("repo_commands", "snapshot_commands", "history_commands"):
    importlib.import_module(f"coursevault.cli.{_module}")
__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn every error into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("COURSEVAULT_DEBUG") == "1"
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="coursevault", standalone_mode=False)
        if isinstance(rv, int):  # click returns a typer.Exit's code instead of raising it
            return rv
    except typer.Exit as exc:
        return int(exc.exit_code)
    except BrokenPipeError:
        # the reader went away (`coursevault diff ... | head`): stop quietly, like cat
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (typer.Abort, KeyboardInterrupt):
        output.err.print("coursevault: interrupted")
        return 130
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


if __name__ == "__main__":
    sys.exit(main())
