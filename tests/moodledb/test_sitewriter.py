"""SiteWriter's typed inserts, updates and reads on a real Moodle schema.

The writer builds each statement once and runs it with parameters; these
tests hold it to what the restore relies on: the ids the database gives,
columns a row leaves out taking the schema's default, statements reused
for rows of other shapes, reads seeing the transaction's own writes, and
a dry run writing nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from coursevault.errors import SiteDataError
from coursevault.moodledb.connect import open_engine
from coursevault.moodledb.schema import create_schema, moodle_metadata
from coursevault.moodledb.sitewriter import SiteWriter

TABLES = ("course", "config", "groups", "grade_items")


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sa.Connection]:
    engine = open_engine(f"sqlite:///{tmp_path / 'site.db'}")
    with engine.connect() as c:
        with c.begin():
            create_schema(c, moodle_metadata(tables=TABLES))
        with c.begin():
            yield c
    engine.dispose()


def test_insert_returns_new_ids_and_reads_see_them(conn: sa.Connection) -> None:
    writer = SiteWriter(conn, "mdl_")
    first = writer.insert("groups", {"id": "77", "courseid": "5", "name": "Red"})
    # another shape of row on the same table: fewer columns, an extra unknown one
    second = writer.insert("groups", {"courseid": 5, "name": "Blue", "nosuchcolumn": "x"})
    assert (first, second) == (1, 2)  # the old id 77 is not kept
    rows = list(writer.rows("groups", {"courseid": "5"}))
    assert [(r["id"], r["name"], r["courseid"]) for r in rows] == [(1, "Red", 5), (2, "Blue", 5)]
    # a column the row did not carry takes the schema's default
    assert rows[0]["enrolmentkey"] is None and rows[0]["timecreated"] == 0
    assert writer.one("groups", {"name": "Blue"}) == rows[1]
    assert writer.one("groups", {"name": "Green"}) is None
    assert list(writer.rows("groups", {"courseid": 5}, ["name"])) == [
        {"name": "Red"},
        {"name": "Blue"},
    ]
    assert writer.counts == {"groups": 2}


def test_update_sets_only_the_row_named(conn: sa.Connection) -> None:
    writer = SiteWriter(conn, "mdl_")
    a = writer.insert("groups", {"courseid": 5, "name": "Red"})
    b = writer.insert("groups", {"courseid": 5, "name": "Blue"})
    writer.update("groups", b, {"name": "Green", "idnumber": "g1"})
    writer.update("groups", a, {"timemodified": "123"})
    writer.update("groups", a, {"nosuchcolumn": 1})  # nothing of the table's: no statement
    got = {
        r["id"]: (r["name"], r["idnumber"], r["timemodified"]) for r in writer.rows("groups", {})
    }
    assert got == {a: ("Red", "", 123), b: ("Green", "g1", 0)}


def test_where_values_are_typed_as_their_column(conn: sa.Connection) -> None:
    writer = SiteWriter(conn, "mdl_")
    writer.insert("config", {"name": "release", "value": "4.5.5+"})
    writer.insert("config", {"name": "version", "value": "2024100705"})
    # text values for an integer column, and an integer for a text column
    assert writer.one("config", {"id": "2"}) == {"id": 2, "name": "version", "value": "2024100705"}
    assert writer.one("config", {"value": "4.5.5+"})["name"] == "release"  # type: ignore[index]
    assert writer.scalar("SELECT count(*) FROM {config} WHERE name = :n", {"n": "release"}) == 1


def test_numbers_are_stored_as_the_schema_writer_stores_them(conn: sa.Connection) -> None:
    """SQLite's driver takes no Decimal: N columns are bound as the dialect
    binds a Numeric (a float there), so a restore on a SQLite demo site
    stores what the demo site's own typed tables would."""
    writer = SiteWriter(conn, "mdl_")
    restored = writer.insert(
        "grade_items",
        {"courseid": 2, "grademax": "100.50000", "gradepass": "", "aggregationcoef": "0.25"},
    )
    typed = moodle_metadata(tables=["grade_items"]).tables["mdl_grade_items"]
    made = conn.execute(
        typed.insert()
        .values(courseid=2, grademax=Decimal("100.5"), aggregationcoef=Decimal("0.25"))
        .returning(typed.c.id)
    ).scalar_one()
    got = {
        r.id: (r.grademax, r.gradepass, r.aggregationcoef) for r in conn.execute(sa.select(typed))
    }
    assert got[restored] == got[made] == (Decimal("100.5"), Decimal(0), Decimal("0.25"))


def test_dry_run_writes_nothing(conn: sa.Connection) -> None:
    writer = SiteWriter(conn, "mdl_", dry_run=True)
    ids = [writer.insert("course", {"shortname": f"c{i}", "fullname": "C"}) for i in range(3)]
    assert ids == [-1, -2, -3]
    writer.update("course", 1, {"fullname": "D"})
    assert writer.counts == {"course": 3}
    assert conn.execute(sa.text("SELECT count(*) FROM mdl_course")).scalar() == 0


def test_bad_values_and_tables_are_site_data_errors(conn: sa.Connection) -> None:
    writer = SiteWriter(conn, "mdl_")
    with pytest.raises(SiteDataError, match=r"groups\.courseid"):
        writer.insert("groups", {"courseid": "five", "name": "Red"})
    with pytest.raises(SiteDataError, match=r"neither Moodle 4\.5.s nor in the site.s database"):
        writer.insert("nosuchtable", {"name": "x"})
    assert not writer.has_table("nosuchtable") and writer.has_table("groups")


@pytest.mark.parametrize(("row", "column"), [
    ({"courseid": 5, "name": "x" * 255}, "groups.name"),  # C254: 255 characters
    ({"courseid": 2**63, "name": "Red"}, "groups.courseid"),  # I8
    ({"courseid": 5, "name": "Red", "visibility": 40000}, "groups.visibility"),  # I2
    ({"courseid": "99999999999999999999", "name": "Red"}, "groups.courseid"),
    ({"courseid": "NaN", "name": "Red"}, "groups.courseid"),
    ({"courseid": "Infinity", "name": "Red"}, "groups.courseid"),
])
def test_a_value_its_column_cannot_hold_is_a_site_data_error(
    conn: sa.Connection, row: dict[str, object], column: str
) -> None:
    """What PostgreSQL refuses at the insert ("value too long", "smallint
    out of range": exit 13) and SQLite stored as it was -- or failed on
    as an internal error (a Python int past 64 bits) -- is refused before
    it reaches the database, naming the column (exit 2), on both."""
    writer = SiteWriter(conn, "mdl_")
    with pytest.raises(SiteDataError, match=column.replace(".", r"\.")):
        writer.insert("groups", row)
    writer.insert("groups", {"courseid": 5, "name": "x" * 254})  # a full column is fine


def test_a_none_in_where_matches_null(conn: sa.Connection) -> None:
    """``one(table, {"enrolmentkey": None})`` finds the row whose column IS NULL
    (a merge finds the course's top grade category so, by ``parent``)."""
    writer = SiteWriter(conn, "mdl_")
    writer.insert("groups", {"courseid": 5, "name": "Red", "enrolmentkey": "r"})
    blank = writer.insert("groups", {"courseid": 5, "name": "Blue", "enrolmentkey": None})
    found = writer.one("groups", {"courseid": 5, "enrolmentkey": None})
    assert found is not None and found["id"] == blank
