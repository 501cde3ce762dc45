"""``restore --start-date`` shifts the columns ``is_date`` names: each of
them must be able to hold a date.  Moodle keeps its times in int(10)
columns (bigint); a smaller integer column the name rule takes is a flag
or a duration -- choice.allowupdate (0/1) was shifted by the offset, which
PostgreSQL refuses for a smallint (exit 13) and SQLite stored as a flag
of 604801."""

from __future__ import annotations

from coursevault.definitions.restore_dates import is_date
from coursevault.moodledb.schema import table_defs


def test_every_integer_date_column_holds_a_date() -> None:
    small = sorted(
        f"{t.name}.{c.name} ({c.type_code})"
        for t in table_defs()
        for c in t.columns
        if is_date(t.name, c.name) and c.type_code.startswith("I") and c.type_code != "I8"
    )
    assert small == [], small
