"""site.client_text writes a PostgreSQL query's text exactly as psycopg's
mogrify does (the planner must see the same constants: the order of rows
read without ORDER BY depends on its plan)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import sqlalchemy as sa

from coursevault.moodledb.site import client_text

CASES: list[tuple[str, dict[str, Any]]] = [
    ("SELECT * FROM t WHERE id IN :ids", {"ids": [1, 2, 3, 10**12]}),
    ("SELECT * FROM t WHERE id IN :ids AND x = :x", {"ids": [-1, 0, 7], "x": "o'k\\"}),
    ("SELECT * FROM t WHERE a = :a AND b = :b AND c = :c", {"a": None, "b": True, "c": 1.5}),
    ("SELECT '100%' AS p, x FROM t WHERE name LIKE :n AND id = :i", {"n": "%a_", "i": -42}),
    ("SELECT 1 AS one", {}),
    ("SELECT * FROM t WHERE big = :b", {"b": 2**70}),
]


@pytest.mark.parametrize("sql,params", CASES)
def test_the_text_is_mogrify_s(sql: str, params: dict[str, Any]) -> None:
    url = os.environ.get("COURSEVAULT_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("no postgresql server (CI=true needs it)")
        pytest.skip("no postgresql server: run scripts/test (it starts the servers)")
    import psycopg

    engine = sa.create_engine(str(url))
    try:
        with engine.connect() as conn:
            binds = [sa.bindparam(k, v, expanding=isinstance(v, list)) for k, v in params.items()]
            query = sa.text(sql).bindparams(*binds)
            compiled = query.compile(dialect=conn.dialect,
                                     compile_kwargs={"render_postcompile": True})
            raw = conn.connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            cursor = psycopg.ClientCursor(raw)
            want = cursor.mogrify(str(compiled), compiled.params)
            assert client_text(cursor, str(compiled), compiled.params) == want
    finally:
        engine.dispose()


def test_compiled_text_is_compile_s_for_every_shape_and_value() -> None:
    """Compiled once per shape, the text and parameters are still exactly
    what compiling each query gives -- for new values of a cached shape,
    another IN length, other bind types, and a NULL."""
    from sqlalchemy.dialects import postgresql

    from coursevault.moodledb.site import compiled_text

    dialect = postgresql.psycopg.dialect()
    sql = "SELECT * FROM t WHERE id IN :ids AND name = :n AND x = :x"
    for ids, name, x in [([1, 2, 3], "a", 5), ([4, 5, 6], "b'", -1), ([7], "c", None),
                         (["u", "v"], "d", 2.5), ([8, 9, 10], "e", 6), ([11, 12], "f", 7),
                         ([13, 14, 15], "g", 2.5), (["w", "x", "y"], "h", 8),
                         ([1, 2, 3], "a", 5)]:
        query = sa.text(sql).bindparams(
            sa.bindparam("ids", ids, expanding=True), sa.bindparam("n", name),
            sa.bindparam("x", x))
        compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        assert compiled_text(query, dialect) == (str(compiled), compiled.params)
