"""Rows into a live Moodle site, inside one transaction the caller commits.

A restore writes a course's rows with the ids the database hands out (the
site's sequences, as Moodle's ``insert_record`` does), so it can share the
site with Moodle running beside it.  Values come from backup XML as text;
they are converted to each column's type from the Moodle 4.5 schema here,
once, so the restore steps above deal in one representation whatever the
database.  Columns a backup does not carry take the schema's default, as
Moodle's own inserts leave them.  Reads go through the same connection (so
they see the transaction's own writes).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from coursevault.errors import SiteDataError
from coursevault.moodledb.schema import table_defs

Row = dict[str, Any]


class SiteWriter:
    """Typed inserts and updates into Moodle's tables (names without prefix)."""

    def __init__(self, conn: sa.Connection, prefix: str, *, dry_run: bool = False) -> None:
        self.conn = conn
        self.prefix = prefix
        self.dry_run = dry_run
        self._types, self._nullable, self._tables = _site_tables(prefix)
        self._fake_id = 0
        self.counts: dict[str, int] = {}
        # the id of the last row inserted into each table: a row only this
        # transaction wrote, which a new connection can look for
        self.last_ids: dict[str, int] = {}
        self._sqlite = conn.dialect.name == "sqlite"

    def has_table(self, table: str) -> bool:
        return table in self._types

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> type code (``I8``, ``C255``, ``X``, ``N10,5``...)."""
        try:
            return self._types[table]
        except KeyError:
            raise SiteDataError(f"table {table!r} is not a Moodle 4.5 table") from None

    def typed(self, table: str, row: Mapping[str, Any]) -> Row:
        """The row's values for ``table``'s columns, converted; others dropped."""
        types = self.columns(table)
        nullable = self._nullable[table]
        out: Row = {}
        for name, value in row.items():
            code = types.get(name)
            if code is None:
                continue
            out[name] = _convert(table, name, code, value, nullable[name])
        return out

    def insert(self, table: str, row: Mapping[str, Any]) -> int:
        """Insert one row (its ``id`` ignored) and return the id given."""
        values = self.typed(table, row)
        values.pop("id", None)
        if self._sqlite:
            values = _sqlite_values(values)
        self.counts[table] = self.counts.get(table, 0) + 1
        if self.dry_run:
            self._fake_id -= 1
            return self._fake_id
        result: sa.CursorResult[Any] = self.conn.execute(
            self._tables[table].insert().values(**values).returning(sa.column("id")))
        new_id = int(result.scalar_one())
        self.last_ids[table] = new_id
        return new_id

    def update(self, table: str, row_id: int, values: Mapping[str, Any]) -> None:
        typed = self.typed(table, values)
        if self.dry_run or not typed:
            return
        if self._sqlite:
            typed = _sqlite_values(typed)
        t = self._tables[table]
        self.conn.execute(t.update().where(t.c.id == row_id).values(**typed))

    def rows(self, table: str, where: Mapping[str, Any], columns: Sequence[str] = ()) -> Iterator[Row]:
        """Rows of ``table`` matching ``where`` (equality), by id."""
        t = self._tables[table]
        cols = [t.c[c] for c in columns] if columns else list(t.c)
        query = sa.select(*cols)
        for name, value in where.items():
            query = query.where(t.c[name] == self.typed(table, {name: value})[name])
        for row in self.conn.execute(query.order_by(t.c.id)):
            yield dict(row._mapping)

    def one(self, table: str, where: Mapping[str, Any]) -> Row | None:
        for row in self.rows(table, where):
            return row
        return None

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """One value of Moodle-style SQL with ``{table}`` names and named params."""
        text = _prefixed(sql, self.prefix)
        return self.conn.execute(sa.text(text), dict(params or {})).scalar()


@functools.lru_cache(maxsize=4)
def _site_tables(prefix: str) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, bool]],
                                       dict[str, sa.TableClause]]:
    """Column types, nullability and table clauses of Moodle's 494 tables
    under a prefix: read from the shipped schema once a process (0.2 s, a
    fifth of a small course's restore), then shared -- never changed."""
    types: dict[str, dict[str, str]] = {}
    nullable: dict[str, dict[str, bool]] = {}
    tables: dict[str, sa.TableClause] = {}
    for tdef in table_defs():
        types[tdef.name] = {"id": "I8", **{c.name: c.type_code for c in tdef.columns}}
        nullable[tdef.name] = {"id": False, **{c.name: c.nullable for c in tdef.columns}}
        cols: list[sa.ColumnClause[Any]] = [sa.column("id")]
        cols += [sa.column(c.name) for c in tdef.columns]
        tables[tdef.name] = sa.table(prefix + tdef.name, *cols)
    return types, nullable, tables


def _sqlite_values(values: Row) -> Row:
    """sqlite3 binds no Decimal: numbers go as their text, which a NUMERIC
    column stores as a number."""
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}


def _prefixed(sql: str, prefix: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: prefix + m.group(1), sql)


def _convert(table: str, column: str, code: str, value: Any, nullable: bool) -> Any:
    if value is None:
        return None
    kind = code[0]
    if kind == "I":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text == "" and nullable:
            return None
        try:
            return int(text) if text else 0
        except ValueError:
            try:
                return int(Decimal(text))
            except InvalidOperation:
                raise SiteDataError(
                    f"{table}.{column}: {str(value)[:40]!r} is not an integer"
                ) from None
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
    return str(value)
