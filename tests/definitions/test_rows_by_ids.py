"""``rows_by_ids``: the final task's rows of annotated ids (users, groups,
scales, files...), read 500 ids a query, handed back in the ids' order."""

from __future__ import annotations

import gc
import random
import tracemalloc
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from coursevault.definitions.final_annotations import rows_by_ids
from coursevault.moodledb.site import SiteReader

USERS = 4000


def _reader(conn: sa.Connection) -> SiteReader:
    conn.execute(sa.text("CREATE TABLE mdl_user (id INTEGER PRIMARY KEY, username TEXT)"))
    conn.execute(sa.text("INSERT INTO mdl_user (id, username) VALUES (:id, :u)"),
                 [{"id": i, "u": f"user{i}"} for i in range(1, USERS + 1)])
    return SiteReader(conn, "mdl_")


def _ctx(reader: SiteReader) -> Any:
    return SimpleNamespace(reader=reader)


def test_rows_come_back_in_the_order_of_the_ids_missing_ones_left_out() -> None:
    with sa.create_engine("sqlite://").connect() as conn:
        ctx = _ctx(_reader(conn))
        ids = [str(i) for i in random.Random(7).sample(range(1, USERS + 1), 1700)]
        ids.insert(3, "999999")  # not in the table
        rows = rows_by_ids(ctx, "SELECT * FROM {user} WHERE id IN", ids)
    assert [r["id"] for r in rows] == [i for i in ids if i != "999999"]
    assert rows[0]["username"] == f"user{ids[0]}"


def test_a_site_s_users_leave_no_statement_of_their_ids_behind() -> None:
    """A bound parameter per id made 500 of them a query, which SQLAlchemy
    cloned and kept in its statement cache with the text: some 1.5 MiB for
    each of users.xml's queries, still held while the next members were
    made (a 4,000-user course).  One list parameter is one expanding bind."""
    with sa.create_engine("sqlite://").connect() as conn:
        ctx = _ctx(_reader(conn))
        ids = [str(i) for i in range(1, USERS + 1)]
        rows_by_ids(ctx, "SELECT * FROM {user} WHERE id IN", ids[:100])  # warm up
        gc.collect()
        tracemalloc.start()
        rows = rows_by_ids(ctx, "SELECT * FROM {user} WHERE id IN", ids[:1250])
        assert len(rows) == 1250
        del rows
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    assert kept < 256 * 1024, f"{kept / 2**20:.2f} MiB kept after the query"
