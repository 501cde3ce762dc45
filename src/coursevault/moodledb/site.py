"""One read-only, consistent view of a Moodle database.

Values come back as PHP sees them -- every column a string or None, numbers
in the database's own text form (``100.00000`` for a ``numeric(10,5)``) --
because Moodle's backup writes what PHP's drivers hand it and a writer that
re-formats numbers cannot be byte-identical.  PostgreSQL (psycopg 3) is told
to load numbers as text, PyMySQL to decode nothing; SQLite (the embedded demo
site, never a real Moodle) has its integers and reals rendered here.

A course is read inside one transaction that sees one moment: PostgreSQL
``REPEATABLE READ READ ONLY``, MariaDB/MySQL ``START TRANSACTION WITH
CONSISTENT SNAPSHOT``, SQLite a deferred ``BEGIN``.  Nothing is ever written.
Driver errors are translated here into :class:`SiteError` (the site cannot
be read) naming the database without its password.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url

from coursevault.errors import SiteDataError, SiteError
from coursevault.moodledb.driveropts import canonical_url, refuse_bad_options
from coursevault.urls import refuse_unencoded_at, shown_url

Row = dict[str, str | None]
IN_BATCH = 1000  # ids per IN (...): well under every driver's parameter limit
# sqlite3 keeps 128 prepared statements a connection by default; a backup's
# statements with 1,000-id IN lists compile into large programs, and holding
# a hundred of them cost about 6 MB of the demo M course's peak (no statement
# runs often enough for the smaller cache to cost time: docs/benchmarks.md §9).
SQLITE_STATEMENT_CACHE = 16
_PG_NUMBERS = ("int2", "int4", "int8", "numeric", "float4", "float8", "oid", "bool")
_PLACEHOLDER = re.compile(r"\(\?\)|\?|\{(\w+)\}")  # "(?)" apart: it may take a list


def open_engine(url: str) -> Engine:
    """An engine whose connections return every value as PHP's drivers do."""
    refused = refuse_unencoded_at(url)
    if refused is not None:
        raise SiteError(refused)
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise SiteError(f"database URL {shown_url(url)!r} is not a URL (postgresql+psycopg://..., "
                        "mysql+pymysql://..., sqlite:///path)") from None
    parsed = canonical_url(parsed)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        engine = sa.create_engine(parsed.set(drivername="postgresql+psycopg"))
        event.listen(engine, "connect", _pg_text_loaders)
    elif backend in ("mysql", "mariadb"):
        engine = sa.create_engine(
            parsed.set(drivername="mysql+pymysql", query={**parsed.query, "charset": "utf8mb4"}),
            connect_args={"conv": _pymysql_encoders_only()},
        )
    elif backend == "sqlite":
        require_sqlite_file(parsed)
        engine = sa.create_engine(
            parsed,
            isolation_level="AUTOCOMMIT",
            connect_args={"cached_statements": SQLITE_STATEMENT_CACHE},
        )
        event.listen(engine, "connect", _sqlite_functions)
    else:
        raise SiteError(f"{describe(parsed)}: unsupported database (PostgreSQL, MariaDB/MySQL "
                        "or SQLite)")
    refuse_bad_options(engine, describe(engine.url))
    return engine


# what SQLAlchemy's pysqlite dialect takes from a URL's query
_SQLITE_ARGS = {"timeout", "isolation_level", "detect_types", "check_same_thread",
                "cached_statements", "uri"}


def check_sqlite_query(url: URL) -> None:
    """A query argument the driver does not take (``?mode=ro``, as SQLite's
    own URIs write it) was ignored with a multi-line warning: refused
    before the engine is made, saying how SQLAlchemy passes it on."""
    unknown = sorted(set(url.query) - _SQLITE_ARGS)
    uri = "uri" in url.query
    if (unknown and not uri) or (uri and not (url.database or "").startswith("file:")):
        # with uri=true a path that is not a file: URI is a file name,
        # query and all: SQLite would make a new, empty 'site.db?mode=ro'
        raise SiteError(f"database {describe(url)}: SQLite URI parameters (?mode=ro) are "
                        "written sqlite:///file:/path/site.db?mode=ro&uri=true")


def require_sqlite_file(url: URL) -> None:
    """A SQLite site's file must be there: SQLite would create an empty one
    on connecting, a mistyped path would be left behind as a file, and the
    error would be about the tables that file lacks."""
    check_sqlite_query(url)
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    if not os.path.isfile(database):
        raise SiteError(f"database {describe(url)}: no such file {database}")


def _sqlite_functions(dbapi_conn: Any, _record: Any) -> None:
    """SQL functions the definitions use that SQLite before 3.44 lacks:
    ``CONCAT`` (Python 3.11 ships 3.40; the demo site runs there)."""
    dbapi_conn.create_function("CONCAT", -1, _concat, deterministic=True)


def _concat(*parts: Any) -> str:
    return "".join("" if p is None else str(p) for p in parts)


def _pymysql_encoders_only() -> dict[Any, Any]:
    """PyMySQL's ``conv`` holds decoders (int keys: column types) and
    encoders (Python types) together: keep the encoders, which parameters
    and the driver's own ``SET AUTOCOMMIT`` need, and drop the decoders so
    every value comes back as the text the server sent, as PHP's mysqli does."""
    from pymysql.converters import conversions

    return {k: v for k, v in conversions.items() if not isinstance(k, int)}


def describe(url: URL | str) -> str:
    """The database as messages name it: the URL without its password."""
    parsed = make_url(url) if isinstance(url, str) else url
    # render_as_string hides only a user:password@ password, not ?password=
    return shown_url(parsed.render_as_string(hide_password=True))


def _pg_text_loaders(dbapi_conn: Any, _record: Any) -> None:
    from psycopg.types.string import TextLoader

    for name in _PG_NUMBERS:
        dbapi_conn.adapters.register_loader(name, TextLoader)


class SiteReader:
    """Queries against one open read transaction, with Moodle's table prefix."""

    def __init__(self, conn: Connection, prefix: str) -> None:
        self.conn = conn
        self.prefix = prefix
        self._sqlite = conn.dialect.name == "sqlite"
        self._cursor = conn.dialect.name == "postgresql"
        self._cursors = 0  # server-side cursors declared so far (their names)
        self._done: list[str] = []  # cursors read or dropped, closed with the next query

    def table(self, name: str) -> sa.TableClause:
        return sa.table(self.prefix + name)

    def rows(
        self,
        table: str,
        where: Mapping[str, Any] | None = None,
        *,
        order: str | None = None,
        columns: Sequence[str] | None = None,
    ) -> Iterator[Row]:
        """Rows of ``table`` matching ``where`` (a list value means IN, batched)."""
        where = dict(where or {})
        lists = [k for k, v in where.items() if isinstance(v, (list, tuple, set, frozenset))]
        if len(lists) > 1:
            raise ValueError("at most one IN (...) condition per query")
        if not lists:
            yield from self._select(table, where, order, columns)
            return
        key = lists[0]
        values = list(dict.fromkeys(where.pop(key)))
        for start in range(0, len(values), IN_BATCH):
            batch = values[start : start + IN_BATCH]
            yield from self._select(table, {**where, key: batch}, order, columns)

    def _select(
        self, table: str, where: Mapping[str, Any], order: str | None,
        columns: Sequence[str] | None,
    ) -> Iterator[Row]:
        quote = self.conn.dialect.identifier_preparer.quote
        yield from self._run(select_text(quote, self.prefix + table, where, order, columns))

    def sql(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        """Moodle-style SQL: ``{table}`` names a prefixed table, ``?`` a
        parameter; a list parameter stands for several (``IN (?)``)."""
        binds: dict[str, Any] = {}
        expanding: list[sa.BindParameter[Any]] = []
        used = 0

        def replace(m: re.Match[str]) -> str:
            nonlocal used
            if m.group(1):
                return self.prefix + m.group(1)
            if used >= len(params):
                raise ValueError(f"{len(params)} parameters for more placeholders")
            value = params[used]
            used += 1
            name = f"p{used - 1}"
            if isinstance(value, list):
                if not value:
                    raise ValueError("an empty list parameter")
                values = [_bind(v) for v in value]
                if m.group(0) != "?" and len({type(v) for v in values}) == 1:
                    # one expanding bind renders "(v1, v2...)" as the
                    # per-value binds below do, and compiles 5x faster
                    expanding.append(sa.bindparam(name, values, expanding=True))
                    return f":{name}"
                names = [f"{name}_{i}" for i in range(len(value))]
                binds.update(zip(names, values, strict=True))
                listed = ", ".join(f":{n}" for n in names)
                return listed if m.group(0) == "?" else f"({listed})"
            binds[name] = _bind(value)
            return f":{name}" if m.group(0) == "?" else f"(:{name})"

        text = _PLACEHOLDER.sub(replace, sql)
        if used != len(params):
            raise ValueError(f"{len(params)} parameters for {used} placeholders")
        yield from self._run(sa.text(text).bindparams(*expanding, **binds))

    def one(self, table: str, where: Mapping[str, Any]) -> Row | None:
        for row in self.rows(table, where):
            return row
        return None

    def _run(self, query: sa.Executable) -> Iterator[Row]:
        # PostgreSQL: a server-side cursor, as Moodle's pgsql driver reads
        # every recordset (DECLARE ... CURSOR): the planner plans a cursor for
        # its first rows (cursor_tuple_fraction), and the plan decides the
        # order of rows read without ORDER BY -- a plain query returns some
        # tables' rows in another order than Moodle got.  MariaDB/MySQL: the
        # driver reads each result whole: their protocol has one unbuffered
        # result per connection, which a query started while another streams
        # silently cuts short; one query's rows are one course's slice.
        if self._cursor:
            yield from self._run_cursor(query)
            return
        try:
            yield from self._run_result(query)
        except sa.exc.DBAPIError as exc:
            if exc.statement is None:  # raised by a fetch: the message names the table
                exc.statement = str(query)
            raise

    def _run_result(self, query: sa.Executable) -> Iterator[Row]:
        result = self.conn.execute(query)
        names = list(result.keys())
        if not self._sqlite:
            for values in result:
                yield dict(zip(names, values, strict=False))
            return
        # SQLite gives ints where the other databases give text: strings and
        # ints (nearly every value) converted here, the rare rest by _sqlite_text
        for values in result:
            yield {
                n: v if v is None or (c := v.__class__) is str
                else str(v) if c is int else _sqlite_text(v)
                for n, v in zip(names, values, strict=False)
            }


    def _run_cursor(self, query: sa.Executable) -> Iterator[Row]:
        """PostgreSQL: ``DECLARE`` the cursor and ``FETCH`` its first rows in
        one round trip (and close the previous query's cursor in it), where
        a driver's server-side cursor takes three or four: a course's ~100
        queries cost their round trips more than their rows.  Parameters are
        rendered into the text by the driver's own quoting
        (``ClientCursor.mogrify``), with the casts SQLAlchemy writes for
        them, so the planner sees the same typed constants as bound values
        and plans the cursor the same way."""
        import psycopg

        assert isinstance(query, sa.ClauseElement)
        sql, params = compiled_text(query, self.conn.dialect)
        raw = self.conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        cursor = psycopg.ClientCursor(raw)
        text = client_text(cursor, sql, params)
        self._cursors += 1
        name = f"cv_cursor_{self._cursors}"
        close = "".join(f"CLOSE {done}; " for done in self._done)
        self._done.clear()
        try:
            yield from self._fetch(cursor, name, f"{close}DECLARE {name} CURSOR FOR {text}")
        except psycopg.Error as exc:  # as SQLAlchemy wraps it: read_transaction names the site
            raise sa.exc.DBAPIError(text, None, exc) from exc
        finally:
            # read to its end or dropped: closed with the next query (a
            # query may run while another one's rows are still being read)
            self._done.append(name)

    @staticmethod
    def _fetch(cursor: Any, name: str, declare: str) -> Iterator[Row]:
        cursor.execute(f"{declare}; FETCH FORWARD {_FETCH} FROM {name}")
        while cursor.nextset():  # to the FETCH's result
            pass
        # the column names straight from the result: ``cursor.description``
        # builds a Column per column, each looking its type up (0.3 ms a query)
        res = cursor.pgresult
        encoding = cursor.connection.info.encoding
        names = [] if res is None else [
            (res.fname(i) or b"").decode(encoding) for i in range(res.nfields)
        ]
        while True:
            rows = cursor.fetchall()
            for values in rows:
                yield dict(zip(names, values, strict=False))
            if len(rows) < _FETCH:
                return
            cursor.execute(f"FETCH FORWARD {_FETCH} FROM {name}")


_FETCH = 500  # rows per FETCH: a query's rows are streamed, never a whole table
_PYFORMAT = re.compile(r"%%|%\((\w+)\)s")


# compiled texts by query shape (see compiled_text), across a run's courses
_COMPILED: dict[tuple[Any, ...], str] = {}
_COMPILED_MAX = 4096


def compiled_text(query: sa.ClauseElement, dialect: Any) -> tuple[str, dict[str, Any]]:
    """``query.compile(dialect, render_postcompile)``'s text and parameters,
    the text compiled once per shape.  A query's text depends on its SQL,
    its binds' names and types and each IN list's length, never on the
    values: a site's night asks 3,000 queries of a few hundred shapes, and
    compiling each took a tenth of its CPU.  The parameters are named as
    SQLAlchemy names them (``ids_1``, ``ids_2``... for an IN list); a shape
    whose first compile names them otherwise is never cached."""
    binds: dict[str, Any] | None = getattr(query, "_bindparams", None)
    if not isinstance(query, sa.TextClause) or binds is None:
        compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        return str(compiled), dict(compiled.params)
    params: dict[str, Any] = {}
    shape: list[tuple[str, int, type]] = []
    for name, bind in binds.items():
        if bind.expanding:
            values = bind.value
            shape.append((name, len(values), bind.type.__class__))
            params.update(zip([f"{name}_{i}" for i in range(1, len(values) + 1)], values,
                              strict=True))
        else:
            shape.append((name, -1, bind.type.__class__))
            params[name] = bind.value
    key = (dialect.name, query.text, tuple(shape))
    text = _COMPILED.get(key)
    if text is None:
        compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        text = str(compiled)
        if compiled.params != params:
            return text, dict(compiled.params)
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()
        _COMPILED[key] = text
    return text, params


def client_text(cursor: Any, sql: str, params: Mapping[str, Any]) -> str:
    """``cursor.mogrify(sql, params)``, the same text, with the integer
    parameters written in here: an IN list of 1,000 ids is 1,000
    placeholders, which psycopg's query parser (Python, and uncached for a
    text that long) took 2 ms a query to split -- 8 % of an M course's
    backup on PostgreSQL.  An int is written as psycopg writes it (a
    negative one after a space); anything else, and ``%%``, is left to
    mogrify (tests/moodledb/test_client_text.py holds the texts equal)."""
    rest: dict[str, Any] = {}

    def put(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None:
            return m.group(0)
        value = params[name]
        if value.__class__ is int:
            return f" {value}" if value < 0 else str(value)
        rest[name] = value
        return m.group(0)

    text: str = cursor.mogrify(_PYFORMAT.sub(put, sql), rest)
    return text


def select_text(
    quote: Callable[[str], str], table: str, where: Mapping[str, Any], order: str | None,
    columns: Sequence[str] | None,
) -> sa.TextClause:
    """``SELECT columns FROM table WHERE ... ORDER BY order`` exactly as
    SQLAlchemy's ``select()`` renders it (tests/moodledb/test_site_sql.py
    holds them equal on each dialect), as a ``text()`` with a bind per value
    and an expanding one per IN list: ``select()``'s compiler took twice as
    long, per query, as the text's -- and a course's queries are all
    different.  ``quote`` is the dialect's identifier quoting."""
    text = f"SELECT {', '.join(map(quote, columns)) if columns else '*'} \nFROM {quote(table)}"
    conditions: list[str] = []
    binds: list[sa.BindParameter[Any]] = []
    for name, value in where.items():
        bind = f"w{len(binds)}"
        if isinstance(value, list):
            conditions.append(f"{quote(name)} IN :{bind}")
            binds.append(sa.bindparam(bind, [_bind(v) for v in value], expanding=True))
        elif value is None:
            conditions.append(f"{quote(name)} IS NULL")
        elif isinstance(value, bool):  # select() writes "= true" ("= 1" on SQLite)
            raise TypeError(f"{table}.{name}: compare with 0 or 1, as Moodle's columns hold")
        else:
            conditions.append(f"{quote(name)} = :{bind}")
            binds.append(sa.bindparam(bind, _bind(value)))
    if conditions:
        text += " \nWHERE " + " AND ".join(conditions)
    if order:
        text += f" ORDER BY {order}"
    return sa.text(text).bindparams(*binds)


def _bind(value: Any) -> Any:
    """Parameters go to the database as strings compare with its columns."""
    return int(value) if isinstance(value, str) and value.lstrip("-").isdigit() else value


def _sqlite_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


@contextmanager
def read_transaction(
    engine: Engine, prefix: str, *, site_checked: bool = False
) -> Iterator[SiteReader]:
    """A :class:`SiteReader` over one consistent, read-only moment of the site.

    ``site_checked``: the site was found Moodle's, with this prefix, in an
    earlier transaction (a run's courses), so a missing table is one a
    course needs and the site lacks (a plugin uninstalled): that course's
    SiteDataError, not the site's SiteError that ends the run."""
    where = describe(engine.url)
    try:
        with engine.connect() as conn:
            _begin_snapshot(conn)
            sqlite = conn.dialect.name == "sqlite"
            try:
                yield SiteReader(conn, prefix)
            except BaseException:
                # Ctrl-C inside a query invalidates the connection: its
                # ROLLBACK then raised PendingRollbackError in place of the
                # interrupt (an internal error, not exit 130)
                if sqlite and not conn.invalidated:
                    with contextlib.suppress(sa.exc.SQLAlchemyError):
                        conn.exec_driver_sql("ROLLBACK")
                raise
            if sqlite:
                conn.exec_driver_sql("ROLLBACK")
    except sa.exc.DBAPIError as exc:
        message = _first_line(exc)
        if _bad_value(exc, message):  # one course's row, not the site: the run goes on
            table = _table_of(exc.statement, prefix)
            raise SiteDataError(
                f"{where}: {'table ' + table + ': ' if table else ''}{message}"
            ) from None
        if missing_table(message):
            if site_checked:  # (the message names the table)
                raise SiteDataError(f"{where}: {message} (a table of Moodle 4.5 this course "
                                    "needs: its plugin uninstalled?)") from None
            message += f" (wrong table prefix {prefix!r}, or not a Moodle database?)"
        raise SiteError(f"{where}: {message}") from None


def missing_table(message: str) -> bool:
    """A missing table (SQLite, PostgreSQL's relation, MariaDB's table), not a
    missing role or database, which the same words end."""
    low = message.lower()
    return "no such table" in low or (
        ("relation" in low or "table" in low) and ("does not exist" in low or "doesn't exist" in low)
    )


# a value the driver cannot read (SQLite text that is not UTF-8) or the
# server refuses as data: what is wrong is that row's, not the site's
_BAD_VALUE = ("could not decode", "invalid byte sequence", "incorrect string value")


def _bad_value(exc: sa.exc.DBAPIError, message: str) -> bool:
    return isinstance(exc, sa.exc.DataError) or any(m in message.lower() for m in _BAD_VALUE)


def _table_of(statement: str | None, prefix: str) -> str:
    """The first table ``statement`` reads, without the prefix ("" if none)."""
    found = re.search(rf"\bFROM\s+[`\"]?{re.escape(prefix)}(\w+)", statement or "", re.IGNORECASE)
    return found.group(1) if found else ""


def _begin_snapshot(conn: Connection) -> None:
    name = conn.dialect.name
    if name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    elif name in ("mysql", "mariadb"):
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    else:
        conn.exec_driver_sql("BEGIN")


def _first_line(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
