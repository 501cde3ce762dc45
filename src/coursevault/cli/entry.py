"""The console script's first code, before anything of coursevault is imported.

Ctrl-C while the CLI's modules import (the first few hundred ms, more for
``backup``, which preloads SQLAlchemy and its definitions) was raised where
no handler stood yet: Python printed a traceback of the import instead of
the one line ``coursevault: interrupted`` (cli/app.py's documented exit
130).  Everything the process does runs under this handler.
"""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130  # errors.EXIT_INTERRUPTED, not imported: it is what is guarded
EXIT_TERMINATED = 143  # errors.EXIT_TERMINATED


def run() -> None:
    try:
        from coursevault.cli.app import run as run_app

        run_app()
    except KeyboardInterrupt:
        # SIGTERM unwinds as Ctrl-C does (app._terminate); while the
        # command's modules still load, it ends up here, not in app.main
        app = sys.modules.get("coursevault.cli.app")
        if app is not None and getattr(app, "_TERMINATED", None):
            sys.stderr.write("coursevault: terminated\n")
            sys.exit(EXIT_TERMINATED)
        sys.stderr.write("coursevault: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
