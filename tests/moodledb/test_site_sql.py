"""The SQL a SiteReader sends is SQLAlchemy's: ``select_text`` builds a
``text()`` that renders exactly as ``select()`` would (moodledb/site.py);
``sql()``'s one expanding bind per ``IN (?)`` list renders as one bind per
value did.  Compared on each dialect, values in place: the names of binds
differ, what the server is sent does not."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from coursevault.moodledb.site import select_text

DIALECTS = {
    "postgresql": postgresql.psycopg.dialect(),
    "mysql": mysql.pymysql.dialect(),
    "sqlite": sqlite.pysqlite.dialect(),
}

SHAPES: list[tuple[str, dict[str, Any], str | None, tuple[str, ...] | None]] = [
    ("mdl_course", {"id": 2}, None, None),
    ("mdl_config", {"name": ["version", "release"]}, None, None),
    (
        "mdl_files",
        {"contextid": [5, 6, 7], "component": "mod_page", "itemid": None},
        "id",
        ("id", "contextid", "filearea"),
    ),
    ("mdl_course_sections", {}, "section", None),
    (
        "mdl_x",
        {"order": "3", "user": "x", "Name": ["1", "12"]},
        "sortorder ASC",
        ("default", "select", "MixedCase"),
    ),
    ("mdl_x", {"grade": 1.5, "m": [1, "a"]}, None, None),
]


def rendered(statement: sa.ClauseElement, dialect: Any) -> tuple[str, list[Any]]:
    """The statement and its values in order, with bind names taken out."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    if compiled.positiontup is not None:  # qmark (sqlite)
        return str(compiled), [params[name] for name in compiled.positiontup]
    names = re.findall(r"%\((\w+)\)s", str(compiled))
    return re.sub(r"%\(\w+\)s", "%s", str(compiled)), [params[n] for n in names]


def reference(
    table: str, where: dict[str, Any], order: str | None, columns: tuple[str, ...] | None
) -> sa.Select[Any]:
    """What SiteReader.rows sent before: SQLAlchemy's select()."""
    cols: list[Any] = [sa.column(c) for c in columns] if columns else [sa.text("*")]
    query = sa.select(*cols).select_from(sa.table(table))
    for name, value in where.items():
        col: sa.ColumnClause[Any] = sa.column(name)
        if isinstance(value, list):
            values = [int(v) if isinstance(v, str) and v.isdigit() else v for v in value]
            query = query.where(col.in_(values))
        elif value is None:
            query = query.where(col.is_(None))
        else:
            query = query.where(
                col == (int(value) if isinstance(value, str) and value.isdigit() else value)
            )
    return query.order_by(sa.text(order)) if order else query


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_select_text_renders_as_select_does(dialect: str, shape: int) -> None:
    table, where, order, columns = SHAPES[shape]
    d = DIALECTS[dialect]
    ours = select_text(d.identifier_preparer.quote, table, where, order, columns)
    assert rendered(ours, d) == rendered(reference(table, where, order, columns), d)


def test_a_boolean_condition_is_refused() -> None:
    """select() renders a boolean as a literal, differently per dialect;
    Moodle's tables have no boolean columns, so none is asked for."""
    with pytest.raises(TypeError):
        select_text(str, "mdl_x", {"flag": True}, None, None)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_in_list_as_one_expanding_bind_renders_as_a_bind_per_value(dialect: str) -> None:
    d = DIALECTS[dialect]
    for values in ([4, 5, 6], ["version", "release"], [7]):
        per_value = sa.text(
            "SELECT * FROM t WHERE a IN ("
            + ", ".join(f":p_{i}" for i in range(len(values)))
            + ") AND b = :q"
        ).bindparams(q="x", **{f"p_{i}": v for i, v in enumerate(values)})
        expanding = sa.text("SELECT * FROM t WHERE a IN :p AND b = :q").bindparams(
            sa.bindparam("p", values, expanding=True), q="x"
        )
        assert rendered(expanding, d) == rendered(per_value, d)


def test_an_interrupt_inside_a_sqlite_read_stays_an_interrupt(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C inside a query invalidates the connection; the read's closing
    ROLLBACK then raised PendingRollbackError in place of the interrupt,
    and ``backup`` printed an internal error instead of exiting 130."""
    import sqlite3

    import pytest

    from coursevault.moodledb.site import open_engine, read_transaction

    db = tmp_path / "site.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE mdl_config (id INTEGER PRIMARY KEY, name TEXT, value TEXT)")
    engine = open_engine(f"sqlite:///{db}")
    try:
        with pytest.raises(KeyboardInterrupt), read_transaction(engine, "mdl_") as reader:
            list(reader.rows("config"))
            reader.conn.invalidate()  # what an interrupt inside execute() leaves
            raise KeyboardInterrupt
        with read_transaction(engine, "mdl_") as reader:  # and the engine reads on
            assert list(reader.rows("config")) == []
    finally:
        engine.dispose()


def test_a_database_error_met_while_an_interrupt_unwinds_is_the_interrupt() -> None:
    """SIGTERM during a MariaDB restore: the interrupt cut PyMySQL's read
    short, the rollback then met ``(0, '')``, and the command said
    'database ...: (0, '')' with exit 13 (1 of 14 tries) -- not
    'terminated'.  A database error of its own is still the site's."""
    import pytest
    import sqlalchemy as sa

    from coursevault.errors import SiteError
    from coursevault.moodledb.connect import translated_errors

    engine = sa.create_engine("sqlite://")

    def unwound() -> None:
        try:
            raise KeyboardInterrupt
        finally:  # the rollback of the transaction the interrupt left
            raise sa.exc.OperationalError("ROLLBACK", {}, Exception("(0, '')"))

    try:
        with pytest.raises(KeyboardInterrupt), translated_errors(engine):
            unwound()
        with pytest.raises(SiteError, match=r"\(0, ''\)"), translated_errors(engine):
            raise sa.exc.OperationalError("SELECT 1", {}, Exception("(0, '')"))
    finally:
        engine.dispose()
