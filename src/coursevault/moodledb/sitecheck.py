"""What a site's tables lack of Moodle 4.5's, checked once before a backup.

A backup reads most tables with ``SELECT *`` (as Moodle's ``set_source_table``
does), and a final element whose column is not in the row is written as
``$@NULL@$``.  So a site whose ``mdl_assign`` had lost its ``intro`` column
(a failed upgrade, a hand-made copy, a fork) was backed up without a word:
every assignment's description stored as NULL.  Other missing columns ended
in a ``KeyError`` from the definitions.  One query of the database's own
catalog, compared with ``schema45.txt``, refuses such a site before any
course is read, naming the table and the column.

A table missing altogether is not refused here: a site may have uninstalled
a plugin Moodle ships (its tables go with it), and only a course that holds
such an activity needs them -- that course then fails, naming the table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from importlib import resources

from sqlalchemy.engine import Connection

from coursevault.errors import SiteError
from coursevault.moodledb import schema


def site_columns(conn: Connection, prefix: str) -> dict[str, set[str]]:
    """Each table of the site whose name starts with ``prefix`` (the prefix
    dropped), with its columns: one query of the database's catalog (a row a
    table where the database joins the names; MariaDB's GROUP_CONCAT would
    cut them at 1,024 bytes, so a row a column there)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":  # the catalog itself: information_schema's view took 30 ms
        sql = ("SELECT c.relname, string_agg(a.attname, ',') FROM pg_catalog.pg_attribute a "
               "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
               "WHERE c.relnamespace = current_schema()::regnamespace "
               "AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
               "GROUP BY c.relname")  # a row a table, not a column: 20 -> 7 ms
    elif dialect in ("mysql", "mariadb"):
        sql = ("SELECT table_name, column_name FROM information_schema.columns "
               "WHERE table_schema = DATABASE()")
    else:
        sql = ("SELECT m.name, group_concat(p.name, ',') FROM sqlite_master AS m, "
               "pragma_table_info(m.name) AS p WHERE m.type = 'table' GROUP BY m.name")
    found: dict[str, set[str]] = defaultdict(set)
    for table, columns in conn.exec_driver_sql(sql):
        name = str(table)
        if name.startswith(prefix):
            found[name[len(prefix):]].update(str(columns).lower().split(","))
    return found


def _moodle_columns() -> Iterator[tuple[str, list[str]]]:
    """Each table of ``schema45.txt`` with its column names, read for the
    names alone (schema.table_defs's whole parse took 11-18 ms of a run)."""
    text = resources.files(schema.__package__).joinpath(schema.SCHEMA_FILE).read_text("utf-8")
    table, columns = "", list[str]()
    for line in text.splitlines():
        if line.startswith("table "):
            if table:
                yield table, columns
            table, columns = line.split(" ", 2)[1], list[str]()
        elif line.startswith(" ") and not line.startswith(" @"):
            columns.append(line[1:line.index(" ", 1)])
    if table:
        yield table, columns


def check_columns(conn: Connection, prefix: str, where: str) -> None:
    """SiteError naming the first column Moodle 4.5 has and the site's table
    lacks (and how many more), if any."""
    found = site_columns(conn, prefix)
    missing = [
        (table, column)
        for table, columns in _moodle_columns() if table in found
        for column in columns if column not in found[table]
    ]
    if missing:
        table, column = missing[0]
        more = f" (and {len(missing) - 1} more columns)" if len(missing) > 1 else ""
        raise SiteError(
            f"{where}: table {prefix}{table} has no column {column}{more}: not Moodle 4.5's "
            "schema, whose tables a backup reads (a failed upgrade, or a copy of part of them?)"
        )
