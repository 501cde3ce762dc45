"""The suite on several processes (pytest-xdist; scripts/test passes ``-n``).

Two things would go wrong with no help, and this module is that help:

* The catalog tests use the servers' one scratch database
  (``COURSEVAULT_TEST_POSTGRES`` / ``_MARIADB``, scripts/services) and drop
  its tables first; two processes doing that at once would drop each
  other's.  Each worker gets a database of its own, named after it.
* The per-plugin table (tests/dbbackup) and the round-trip table
  (tests/dbrestore) are tallied in the process that ran the tests and
  printed by the one that reports; each worker hands its tallies back when
  it finishes, and the reporting process adds them up.
"""

from __future__ import annotations

import base64
import os
import pickle
import sys
from typing import Any

import sqlalchemy as sa

SCRATCH = ("COURSEVAULT_TEST_POSTGRES", "COURSEVAULT_TEST_MARIADB")
# module -> its TALLY's shape: nested counters (per-plugin) or lists (round trips)
TALLIES = ("dbbackup.sitecheck", "dbrestore.roundtrip")
KEY = "coursevault_tallies"


def worker_databases(worker: str) -> None:
    """Point this worker's scratch-database variables at ``<name>_<worker>``,
    creating it on its server when missing (kept for the next run)."""
    for var in SCRATCH:
        url = os.environ.get(var)
        if not url:
            continue
        parsed = sa.make_url(url)
        name = f"{parsed.database}_{worker}"
        admin_db = "postgres" if parsed.get_backend_name() == "postgresql" else None
        engine = sa.create_engine(parsed.set(database=admin_db), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                if admin_db:
                    found = conn.execute(
                        sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                    ).first()
                    if not found:
                        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                else:
                    conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS `{name}`"))
        except sa.exc.DBAPIError:
            continue  # no server: the tests that need it skip (or fail under CI) as before
        finally:
            engine.dispose()
        os.environ[var] = parsed.set(database=name).render_as_string(hide_password=False)


def pack_tallies() -> str:
    """This worker's tallies, as text a worker may hand back."""
    found = {m: sys.modules[m].TALLY for m in TALLIES if m in sys.modules}
    return base64.b64encode(pickle.dumps(found)).decode()


def add_tallies(packed: str) -> None:
    """Add a worker's tallies to this (reporting) process's."""
    import importlib

    for module, tally in pickle.loads(base64.b64decode(packed)).items():
        mine: dict[str, Any] = importlib.import_module(module).TALLY
        for server, value in tally.items():
            if isinstance(value, list):
                mine.setdefault(server, []).extend(value)
                continue
            for plugin, counter in value.items():
                mine.setdefault(server, {}).setdefault(plugin, type(counter)()).update(counter)


def print_tallies(terminalreporter: Any) -> None:
    """Each tallying module's table, from whichever process holds the tallies."""
    for module in TALLIES:
        if module in sys.modules and sys.modules[module].TALLY:
            sys.modules[module].summary(terminalreporter)
