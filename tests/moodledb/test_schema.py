"""The shipped Moodle schema is the reference site's, table by table, column by column.

(That the same tables are created on MariaDB and SQLite is test_demosite.py's
concern: a demo site is created on each.)

The schema is created from ``moodle_metadata()`` in an empty PostgreSQL
database and both that and the reference site (a real Moodle 4.5 install)
are reflected: types with their lengths and precisions, nullability, the
default expressions as PostgreSQL prints them, serial ids, primary-key and
index names must all agree.  Only search_simpledb's four full-text indexes
are left out (PostgreSQL-only, made by its install.php; scripts/moodle_schema.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from coursevault.moodledb.schema import create_schema, moodle_metadata, table_defs


def _describe(url: str) -> dict[str, dict[str, Any]]:
    engine = sa.create_engine(url)
    inspector = sa.inspect(engine)
    columns = inspector.get_multi_columns()
    pks = inspector.get_multi_pk_constraint()
    indexes = inspector.get_multi_indexes()
    engine.dispose()
    out: dict[str, dict[str, Any]] = {}
    for (_, table), cols in columns.items():
        out[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c["default"]) for c in cols],
            "pk": (pks[(None, table)]["name"], pks[(None, table)]["constrained_columns"]),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), i["unique"])
                for i in indexes[(None, table)]
                if None not in i["column_names"]
            ),
        }
    return out


def test_the_schema_is_the_reference_sites(
    reference_site_pg: str, scratch_database: Callable[[str], str]
) -> None:
    url = scratch_database("postgresql")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        create_schema(conn, moodle_metadata())
    engine.dispose()
    ours, theirs = _describe(url), _describe(reference_site_pg)
    assert sorted(ours) == sorted(theirs)
    assert len(ours) == 494
    for table in sorted(theirs):
        for mine, ref in zip(ours[table]["columns"], theirs[table]["columns"], strict=True):
            assert mine == ref, f"{table}: column {mine} is {ref} in the reference"
        assert ours[table]["pk"] == theirs[table]["pk"], table
        assert ours[table]["indexes"] == theirs[table]["indexes"], table


def test_a_prefix_names_tables_keys_and_indexes() -> None:
    metadata = moodle_metadata("m45_", tables=["course", "forum_posts"])
    course = metadata.tables["m45_course"]
    assert course.primary_key.name == "m45_cour_id_pk"
    assert {i.name for i in metadata.tables["m45_forum_posts"].indexes} >= {"m45_forupost_dis_ix"}
    assert sum(1 for _ in table_defs()) == 494


def test_unknown_tables_are_refused() -> None:
    with pytest.raises(ValueError, match="nosuchtable"):
        moodle_metadata(tables=["course", "nosuchtable"])
