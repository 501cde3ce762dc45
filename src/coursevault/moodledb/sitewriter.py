"""Rows into a live Moodle site, inside one transaction the caller commits.

A restore writes a course's rows with the ids the database hands out (the
site's sequences, as Moodle's ``insert_record`` does), so it can share the
site with Moodle running beside it.  Values come from backup XML as text;
they are converted to each column's type from the Moodle 4.5 schema here,
once, so the restore steps above deal in one representation whatever the
database.  Columns a backup does not carry take the schema's default, as
Moodle's own inserts leave them.

Rows are sent in batches: ``insert`` gives the row its id at once (from
ids reserved ahead, ``idblocks.py``) and keeps it; a table's kept rows go
in one ``executemany`` per shape when ``BATCH_ROWS`` are waiting, before
any read (``rows``, ``one``, ``scalar``, or the connection handed out by
``conn``: every read sees the transaction's own writes) and at ``flush``,
which the restore calls before it commits.  An update of a row still kept
changes it where it waits.  One statement a row was half of an M course's
restore (216,314 rows: 21 s of 48 under the profiler, SQLAlchemy's
execution path for each); all of it is in the caller's one transaction
either way, so all or nothing holds as before -- a constraint violation is
raised at the flush rather than at the insert, and rolls back the same.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from coursevault.errors import SiteDataError
from coursevault.moodledb.idblocks import IdBlocks
from coursevault.moodledb.schema import table_defs

Row = dict[str, Any]

# rows kept before they are sent (500: ~1 MB less peak than 2000 on an M
# course on PostgreSQL, as fast)
BATCH_ROWS = 500


class SiteWriter:
    """Typed inserts, updates and deletes in Moodle's tables (names without prefix)."""

    def __init__(self, conn: sa.Connection, prefix: str, *, dry_run: bool = False) -> None:
        self._conn = conn
        self.prefix = prefix
        self.dry_run = dry_run
        self._types, self._nullable = _site_tables()
        # a third-party plugin's tables, as the site declares them (columns)
        self._plugin_types: dict[str, dict[str, str]] = {}
        self._plugin_nullable: dict[str, dict[str, bool]] = {}
        self._fake_id = 0
        # A decimal is bound as the dialect binds a Numeric column: as it is on
        # PostgreSQL and MariaDB, as a float on SQLite, whose driver takes no
        # Decimal (the demo site's writer stores its numbers the same way).
        dialect = conn.dialect
        self._decimal = sa.Numeric(asdecimal=True).dialect_impl(dialect).bind_processor(dialect)
        self.counts: dict[str, int] = {}
        self.deleted: dict[str, int] = {}
        self._gone: dict[str, set[int]] = {}  # a dry run's deleted ids, per table
        # Statements are built once per table (and, for reads, per shape) and
        # run with bound parameters: a restore of gen_s inserts ~600 rows, and
        # building ``insert().values(...)`` for each one coerced every value
        # again (a third of the insert time, measured).  The SQL sent and the
        # values bound are the same as building them row by row.
        self._tables: dict[str, sa.TableClause] = {}
        self._inserts: dict[str, sa.Insert] = {}
        self._updates: dict[str, sa.Update] = {}
        self._selects: dict[tuple[Any, ...], sa.Select[Any]] = {}
        # the id of the last row inserted into each table: a row only this
        # transaction wrote, which a new connection can look for
        self.last_ids: dict[str, int] = {}
        self._ids = IdBlocks(conn, prefix)
        # table -> new id -> typed row (with its id), in insertion order
        self._pending: dict[str, dict[int, Row]] = {}
        self._waiting = 0
        self._many: dict[str, sa.Insert] = {}
        self._raw: dict[tuple[str, ...], str] = {}

    @property
    def conn(self) -> sa.Connection:
        """The transaction's connection, every kept row sent first (what
        reads through it must see)."""
        self.flush()
        return self._conn

    def has_table(self, table: str) -> bool:
        return table in self._types

    def site_has_table(self, table: str) -> bool:
        """Whether the site's database has the table, Moodle's or a
        third-party plugin's (which the 4.5 schema does not name)."""
        return table in self._types or sa.inspect(self.conn).has_table(self.prefix + table)

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> type code (``I8``, ``C255``, ``X``, ``N10,5``...):
        Moodle 4.5's, or, for a third-party plugin's table, read from the
        site's own catalog once (an activity of a plugin whose definition is
        installed restores as it backs up; its tables are not in the schema
        coursevault ships)."""
        types = self._types.get(table)
        if types is not None:
            return types
        found = self._plugin_types.get(table)
        if found is None:
            found = self._plugin_types[table] = self._reflect(table)
        return found

    def _reflect(self, table: str) -> dict[str, str]:
        """A table the 4.5 schema does not name, as the site's database
        declares it: its columns' type codes (and nullability)."""
        try:
            reflected = sa.inspect(self._conn).get_columns(self.prefix + table)
        except sa.exc.NoSuchTableError:
            raise SiteDataError(
                f"table {table!r} is neither Moodle 4.5's nor in the site's database") from None
        types = {str(c["name"]): type_code(c["type"]) for c in reflected}
        if types.get("id", "")[:1] != "I":
            raise SiteDataError(f"table {table!r} has no integer id column, as Moodle's all have")
        self._plugin_nullable[table] = {str(c["name"]): bool(c["nullable"]) for c in reflected}
        return types

    def typed(self, table: str, row: Mapping[str, Any]) -> Row:
        """The row's values for ``table``'s columns, converted; others dropped."""
        types = self.columns(table)
        nullable = self._nullable.get(table) or self._plugin_nullable[table]
        out: Row = {}
        for name, value in row.items():
            code = types.get(name)
            if code is None:
                continue
            converted = _convert(table, name, code, value, nullable[name])
            if self._decimal is not None and isinstance(converted, Decimal):
                converted = self._decimal(converted)
            out[name] = converted
        return out

    def insert(self, table: str, row: Mapping[str, Any]) -> int:
        """Insert one row (its ``id`` ignored) and return the id given; the
        row itself may be sent later (``flush``)."""
        values = self.typed(table, row)
        values.pop("id", None)
        self.counts[table] = self.counts.get(table, 0) + 1
        if self.dry_run:
            self._fake_id -= 1
            return self._fake_id
        new_id = self._ids.next(table)
        if new_id is None and not self._ids.batches:  # MariaDB: each row sent now
            new_id = self._insert_one(table, values)
        elif new_id is None:  # the database gives this row's id: sent now
            stmt = self._inserts.get(table)
            if stmt is None:
                stmt = self._inserts[table] = self._table(table).insert().returning(
                    sa.column("id"))
            # the parameters' keys are the columns inserted (none: DEFAULT VALUES)
            result: sa.CursorResult[Any] = self._conn.execute(stmt, values)
            new_id = int(result.scalar_one())
            self._ids.given(table, new_id)
        else:
            values["id"] = new_id
            self._pending.setdefault(table, {})[new_id] = values
            self._waiting += 1
            if self._waiting >= BATCH_ROWS:
                self.flush()
        self.last_ids[table] = new_id
        return new_id

    def _insert_one(self, table: str, values: Row) -> int:
        """One row through the driver's cursor, its id from ``lastrowid``.
        Where rows cannot be batched (MariaDB), SQLAlchemy's execution path
        was most of the cost of a row (an M course: 216,315 of them); the
        SQL is the one SQLAlchemy compiles for those columns, the transaction
        the connection's, and the driver's errors are raised as SQLAlchemy's
        (translated at the restore's boundary like any other)."""
        key = (table, *values)
        sql = self._raw.get(key)
        if sql is None:
            compiled = self._table(table).insert().compile(
                dialect=self._conn.dialect, column_keys=list(values))
            sql = self._raw[key] = str(compiled)
        dbapi_error = self._conn.dialect.loaded_dbapi.Error
        cursor = self._conn.connection.cursor()
        try:
            cursor.execute(sql, values)
            return int(cursor.lastrowid)
        except dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(sql, values, exc, dbapi_error) from None
        finally:
            cursor.close()

    def flush(self) -> None:
        """Send every kept row: per table, one ``executemany`` per set of
        columns (rows of one element share theirs)."""
        if not self._waiting:
            return
        pending, self._pending, self._waiting = self._pending, {}, 0
        for table, kept in pending.items():
            shapes: dict[tuple[str, ...], list[Row]] = {}
            for values in kept.values():
                shapes.setdefault(tuple(values), []).append(values)
            stmt = self._many.get(table)
            if stmt is None:
                stmt = self._many[table] = self._table(table).insert()
            for rows in shapes.values():
                self._conn.execute(stmt, rows)

    def update(self, table: str, row_id: int, values: Mapping[str, Any]) -> None:
        typed = self.typed(table, values)
        if self.dry_run or not typed:
            return
        kept = self._pending.get(table, {}).get(row_id)
        if kept is not None:  # not sent yet: it is sent as updated
            typed.pop("id", None)
            kept.update(typed)
            return
        stmt = self._updates.get(table)
        if stmt is None:
            t = self._table(table)
            stmt = self._updates[table] = t.update().where(t.c.id == sa.bindparam(_ROW_ID))
        self._conn.execute(stmt, {**typed, _ROW_ID: row_id})

    def delete(self, table: str, ids: Sequence[int]) -> None:
        """Delete rows by id, a thousand a statement (``--replace``); a dry
        run counts them only (``deleted``)."""
        self.deleted[table] = self.deleted.get(table, 0) + len(ids)
        if self.dry_run:  # its reads see the site as the deletes would leave it
            self._gone.setdefault(table, set()).update(int(i) for i in ids)
            return
        if not ids:
            return
        self.flush()
        # a third-party plugin's table: its ids are all a delete needs
        t = (self._table(table) if table in self._types
             else sa.table(self.prefix + table, sa.column("id")))
        for start in range(0, len(ids), 1000):
            self._conn.execute(t.delete().where(t.c.id.in_(list(ids[start:start + 1000]))))

    def table_names(self) -> list[str]:
        """Moodle 4.5's tables (without prefix)."""
        return sorted(self._types)

    def rows(
        self, table: str, where: Mapping[str, Any], columns: Sequence[str] = ()
    ) -> Iterator[Row]:
        """Rows of ``table`` matching ``where`` (equality), by id."""
        values = {name: self.typed(table, {name: value})[name] for name, value in where.items()}
        key = (table, tuple(columns), *((name, type(v)) for name, v in values.items()))
        query = self._selects.get(key)
        if query is None:
            query = self._selects[key] = self._select(table, values, columns)
        params = {_WHERE + name: value for name, value in values.items() if value is not None}
        gone = self._gone.get(table, ())
        for row in self.conn.execute(query, params):
            if not gone or row._mapping.get("id") not in gone:
                yield dict(row._mapping)

    def _select(
        self, table: str, values: Mapping[str, Any], columns: Sequence[str]
    ) -> sa.Select[Any]:
        """``rows``' query with each value a parameter of the type SQLAlchemy
        gives that value compared with its column (a literal would get it)."""
        t = self._table(table)
        cols = [t.c[c] for c in columns] if columns else list(t.c)
        query = sa.select(*cols)
        for name, value in values.items():
            if value is None:  # = NULL matches nothing: IS NULL, as Moodle's get_record
                query = query.where(t.c[name].is_(None))
                continue
            compared = t.c[name] == value
            kind = compared.right.type if isinstance(compared, sa.BinaryExpression) else None
            query = query.where(t.c[name] == sa.bindparam(_WHERE + name, type_=kind))
        return query.order_by(t.c.id)

    def _table(self, table: str) -> sa.TableClause:
        """The table's columns as SQLAlchemy knows them, made on first use
        (building all 494 at start cost 0.05 s a restore)."""
        t = self._tables.get(table)
        if t is None:
            cols: list[sa.ColumnClause[Any]] = [sa.column(n) for n in self.columns(table)]
            t = self._tables[table] = sa.table(self.prefix + table, *cols)
        return t

    def rows_in(self, table: str, column: str, values: Sequence[Any],
                where: Mapping[str, Any] | None = None,
                columns: Sequence[str] = ()) -> Iterator[Row]:
        """Rows whose ``column`` is one of ``values`` (and matching ``where``),
        a thousand values per query: one query where a loop would make many
        (``columns``: only those, where a whole row is not needed)."""
        t = self._table(table)
        gone = self._gone.get(table, set())
        # a dry run's deleted rows are left out by their ids, read for that
        extra = ["id"] if gone and columns and "id" not in columns else []
        cols = [t.c[c] for c in [*columns, *extra]] if columns else list(t.c)
        wanted = [self.typed(table, {column: v})[column] for v in values]
        for start in range(0, len(wanted), 1000):
            query = sa.select(*cols).where(t.c[column].in_(wanted[start:start + 1000]))
            for name, value in (where or {}).items():
                query = query.where(t.c[name] == self.typed(table, {name: value})[name])
            for row in self.conn.execute(query.order_by(t.c.id)):
                found = dict(row._mapping)
                if gone and found.get("id") in gone:
                    continue
                for name in extra:
                    del found[name]
                yield found

    def lock(self, table: str, row_id: int) -> bool:
        """Hold row ``row_id`` of ``table`` until the transaction ends; False
        if there is none.  Two restores into one course would otherwise both
        read it, and the second fail half-way on a unique key the first had
        just filled: with the course row held, the second waits and then
        restores over the first.  (SQLite's write lock holds the whole
        database from a transaction's first write.)"""
        t = self._table(table)
        query = sa.select(t.c.id).where(t.c.id == row_id)
        if self.conn.dialect.name != "sqlite":
            query = query.with_for_update()
        return self.conn.execute(query).first() is not None

    def one(self, table: str, where: Mapping[str, Any]) -> Row | None:
        for row in self.rows(table, where):
            return row
        return None

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """One value of Moodle-style SQL with ``{table}`` names and named params."""
        text = _prefixed(sql, self.prefix)
        return self.conn.execute(sa.text(text), dict(params or {})).scalar()


# parameter names no Moodle column has
_ROW_ID = "cv_row_id"
_WHERE = "cv_where_"


@functools.lru_cache(maxsize=1)
def _site_tables() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, bool]]]:
    """Column types and nullability of Moodle's 494 tables: read from the
    shipped schema once a process (0.2 s, a fifth of a small course's
    restore), then shared -- never changed."""
    types: dict[str, dict[str, str]] = {}
    nullable: dict[str, dict[str, bool]] = {}
    for tdef in table_defs():
        types[tdef.name] = {"id": "I8", **{c.name: c.type_code for c in tdef.columns}}
        nullable[tdef.name] = {"id": False, **{c.name: c.nullable for c in tdef.columns}}
    return types, nullable


def type_code(kind: sa.types.TypeEngine[Any]) -> str:
    """The XMLDB type code of a reflected column: what ``_convert`` needs
    (integers, numbers, floats, text of a length, text)."""
    if isinstance(kind, sa.Integer):
        return "I2" if isinstance(kind, sa.SmallInteger) else "I8"
    if isinstance(kind, sa.Float):
        return "F"
    if isinstance(kind, sa.Numeric):
        return f"N{kind.precision or 20},{kind.scale or 0}"
    if isinstance(kind, sa.String) and kind.length and not isinstance(kind, sa.Text):
        return f"C{kind.length}"
    return "X"


def _prefixed(sql: str, prefix: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: prefix + m.group(1), sql)


# the integers each column holds (its bytes: 2, 4 or 8) and the characters
# of a C column: what PostgreSQL refuses at the insert and SQLite stores as
# given (or fails on past 64 bits) is refused here, naming the column
_INT_BOUNDS = {"I2": 2**15, "I4": 2**31, "I8": 2**63}


def _convert(table: str, column: str, code: str, value: Any, nullable: bool) -> Any:
    if value is None:
        return None
    kind = code[0]
    if kind == "I":
        if isinstance(value, bool):
            return int(value)
        number = value if isinstance(value, int) else _integer(table, column, value, nullable)
        bound = _INT_BOUNDS.get(code, 2**63)
        if number is not None and not -bound <= number < bound:
            raise SiteDataError(f"{table}.{column}: {str(value)[:40]} does not fit the column "
                                f"(an integer of {code[1:]} bytes)")
        return number
    if kind == "N":
        text = str(value).strip()
        if text == "":
            return None if nullable else Decimal(0)
        try:
            return Decimal(text)
        except InvalidOperation:
            raise SiteDataError(f"{table}.{column}: {text[:40]!r} is not a number") from None
    if kind == "F":
        text = str(value).strip()
        if text == "":
            return None if nullable else 0.0
        try:
            return float(text)
        except ValueError:
            raise SiteDataError(f"{table}.{column}: {text[:40]!r} is not a number") from None
    text = str(value)
    if kind == "C" and len(text) > _char_limit(code):
        raise SiteDataError(f"{table}.{column}: a value of {len(text)} characters does not fit "
                            f"the column ({_char_limit(code)}): {text[:40]!r}...")
    return text


@functools.cache
def _char_limit(code: str) -> int:
    return int(code[1:])


def _integer(table: str, column: str, value: Any, nullable: bool) -> int | None:
    text = str(value).strip()
    if text == "" and nullable:
        return None
    try:
        return int(text) if text else 0
    except ValueError:
        try:
            return int(Decimal(text))
        except (InvalidOperation, ValueError, OverflowError):  # NaN, Infinity
            raise SiteDataError(
                f"{table}.{column}: {str(value)[:40]!r} is not an integer"
            ) from None
