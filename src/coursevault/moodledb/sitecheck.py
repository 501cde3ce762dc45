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

from sqlalchemy.engine import Connection

from coursevault.errors import SiteError
from coursevault.moodledb.schema import table_defs


def site_columns(conn: Connection, prefix: str) -> dict[str, set[str]]:
    """Each table of the site whose name starts with ``prefix`` (the prefix
    dropped), with its columns: one query of the database's catalog."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        sql = ("SELECT table_name, column_name FROM information_schema.columns "
               "WHERE table_schema = current_schema()")
    elif dialect in ("mysql", "mariadb"):
        sql = ("SELECT table_name, column_name FROM information_schema.columns "
               "WHERE table_schema = DATABASE()")
    else:
        sql = ("SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p "
               "WHERE m.type = 'table'")
    found: dict[str, set[str]] = defaultdict(set)
    for table, column in conn.exec_driver_sql(sql):
        name = str(table)
        if name.startswith(prefix):
            found[name[len(prefix):]].add(str(column).lower())
    return found


def check_columns(conn: Connection, prefix: str, where: str) -> None:
    """SiteError naming the first column Moodle 4.5 has and the site's table
    lacks (and how many more), if any."""
    found = site_columns(conn, prefix)
    missing = [
        (table.name, column.name)
        for table in table_defs() if table.name in found
        for column in table.columns if column.name not in found[table.name]
    ]
    if missing:
        table, column = missing[0]
        more = f" (and {len(missing) - 1} more columns)" if len(missing) > 1 else ""
        raise SiteError(
            f"{where}: table {prefix}{table} has no column {column}{more}: not Moodle 4.5's "
            "schema, whose tables a backup reads (a failed upgrade, or a copy of part of them?)"
        )
