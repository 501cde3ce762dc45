"""Opening a Moodle database: SQLAlchemy's errors become coursevault's here.

As when a site is read (``site.py``), a URL that is not one, a server that
cannot be reached, refuses the credentials or fails a statement is a
``SiteError`` (exit 13) with one line naming the database -- never a driver
traceback.  The URL's password is never printed.  (``site.py``'s engines
read every value as text and never write; these write, so they are apart.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from coursevault.errors import SiteError
from coursevault.moodledb.driveropts import canonical_url, refuse_bad_options
from coursevault.moodledb.site import (
    _sqlite_functions,
    check_sqlite_query,
    describe,
    missing_table,
    require_sqlite_file,
)
from coursevault.urls import refuse_unencoded_at, shown_url

# how long a writer waits for another's SQLite transaction (a restore of an
# M course holds it for 10-20 s)
SQLITE_WAIT = 120.0


def open_engine(url: str, *, existing: bool = False) -> sa.Engine:
    """An engine for a database URL; SQLite gets real transactions for DDL.
    ``existing``: a site's SQLite file must be there (``restore``), not be
    made empty by connecting (``demo-site`` makes one).

    Python's sqlite3 commits before every ``CREATE TABLE``, so creating
    Moodle's 494 tables synced the file 494 times (2.6 s); with ``BEGIN``
    issued by SQLAlchemy the whole schema is one transaction (0.5 s).
    A transaction begun on a connection marked by :func:`writing` (a
    restore's) takes SQLite's write lock as it begins (``IMMEDIATE``): a
    second restore then waits for the first to commit (up to
    ``SQLITE_WAIT`` seconds) rather than failing with "database is locked"
    when it first writes, after reading what the first was changing.
    Other transactions stay deferred: a read made while a restore's
    transaction is open (its commit's outcome, looked up on a new
    connection) must not wait for that transaction.
    """
    refused = refuse_unencoded_at(url)
    if refused is not None:
        raise SiteError(refused)
    try:
        parsed = canonical_url(sa.make_url(url))
        sqlite = parsed.get_backend_name() == "sqlite"
        if sqlite:
            check_sqlite_query(parsed)
        engine = sa.create_engine(parsed, **({"connect_args": {"timeout": SQLITE_WAIT}}
                                             if sqlite else {}))
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise SiteError(f"database URL {_shown(url)} is not a URL: {exc}") from None
    except ImportError as exc:
        raise SiteError(f"no driver for database URL {_shown(url)}: {exc}") from None
    if engine.dialect.name == "sqlite":
        if existing:
            require_sqlite_file(parsed)
        sa.event.listen(engine, "connect", _sqlite_autocommit_off)
        # the backup's definitions run on a restore's connection (--replace)
        sa.event.listen(engine, "connect", _sqlite_functions)
        sa.event.listen(engine, "begin", _sqlite_begin)
    refuse_bad_options(engine, describe(engine.url))
    return engine


def _sqlite_autocommit_off(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


# the execution option that marks a connection whose transactions write
_WRITER = "coursevault_writer"


def writing(conn: sa.Connection) -> sa.Connection:
    """``conn``, its transactions from now on taking SQLite's write lock as
    they begin (nothing changes on other databases)."""
    return conn.execution_options(**{_WRITER: True})


def _sqlite_begin(conn: sa.Connection) -> None:
    immediate = conn.get_execution_options().get(_WRITER, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _shown(url: str) -> str:
    return repr(shown_url(url))


def database_name(engine: sa.Engine) -> str:
    return describe(engine.url)


@contextmanager
def translated_errors(engine: sa.Engine, prefix: str | None = None) -> Iterator[None]:
    """Turn what the driver raises inside into one line naming the database.
    ``prefix``: the tables are a Moodle site's, so a missing one says what
    is likely wrong (a restore into a database that is not Moodle's used to
    print PostgreSQL's bare "relation mdl_config does not exist").

    An error met while Ctrl-C or SIGTERM unwinds the work (PyMySQL's
    ``(0, '')`` from a connection whose read the interrupt cut short, met
    by the rollback) is the interrupt's: it was reported as a database
    error, exit 13, about one time in fourteen."""
    try:
        yield
    except sa_exc.SQLAlchemyError as exc:
        if _during_interrupt(exc):
            raise KeyboardInterrupt from exc
        line = _first_line(exc) if isinstance(exc, sa_exc.DBAPIError) else str(exc)
        if prefix is not None and missing_table(line):
            line += f" (wrong table prefix {prefix!r}, or not a Moodle database?)"
        raise SiteError(f"database {database_name(engine)}: {line}") from exc


def _during_interrupt(exc: BaseException) -> bool:
    seen: BaseException | None = exc.__context__
    for _ in range(20):  # a chain, not a cycle
        if seen is None:
            return False
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__context__
    return False


def _first_line(exc: sa_exc.DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc.orig).__name__
