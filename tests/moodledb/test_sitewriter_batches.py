"""SiteWriter's batched inserts on SQLite, PostgreSQL and MariaDB.

``insert`` gives each row its id at once and may send the row later; these
tests hold it to what the restore relies on: the id given is the row's id
in the database, reads see rows not sent yet, an update of a kept row
lands, ids never collide with rows another connection (Moodle beside the
restore) inserts meanwhile, and a rollback leaves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from coursevault.moodledb import sitewriter
from coursevault.moodledb.connect import open_engine
from coursevault.moodledb.schema import create_schema, moodle_metadata
from coursevault.moodledb.sitewriter import SiteWriter

TABLES = ("groups", "course")


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def site_url(
    request: pytest.FixtureRequest, tmp_path: Path, scratch_database: Callable[[str], str]
) -> Iterator[str]:
    url = (
        f"sqlite:///{tmp_path / 'site.db'}"
        if request.param == "sqlite"
        else scratch_database(request.param)
    )
    engine = open_engine(url)
    with engine.begin() as conn:
        create_schema(conn, moodle_metadata(tables=TABLES))
    engine.dispose()
    yield url


def _rows(url: str) -> dict[int, str]:
    engine = open_engine(url)
    with engine.connect() as conn:
        got = {int(r[0]): str(r[1]) for r in conn.exec_driver_sql("SELECT id, name FROM mdl_groups")}
    engine.dispose()
    return got


def test_ids_given_are_the_rows_ids(site_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitewriter, "BATCH_ROWS", 7)  # several batches, and rows kept between
    engine = open_engine(site_url)
    with engine.connect() as conn, conn.begin():
        writer = SiteWriter(conn, "mdl_")
        given = {writer.insert("groups", {"courseid": 5, "name": f"g{i}", "idnumber": "x"}): f"g{i}"
                 for i in range(40)}
        # another shape on the same table (fewer columns), and another table between
        given[writer.insert("groups", {"courseid": 5, "name": "short"})] = "short"
        course = writer.insert("course", {"shortname": "c", "fullname": "C"})
        last = writer.insert("groups", {"courseid": 5, "name": "last"})
        given[last] = "last"
        # a read sees what is not sent yet, the update lands on a kept row
        writer.update("groups", last, {"name": "renamed"})
        given[last] = "renamed"
        assert writer.one("groups", {"id": last})["name"] == "renamed"  # type: ignore[index]
        assert writer.one("course", {"id": course}) is not None
        writer.flush()
    engine.dispose()
    assert len(given) == 42
    assert list(given) == sorted(given)  # increasing, as the inserts came
    assert _rows(site_url) == given


def test_rollback_leaves_nothing(site_url: str) -> None:
    engine = open_engine(site_url)
    with engine.connect() as conn, conn.begin() as tx:
        writer = SiteWriter(conn, "mdl_")
        for i in range(30):
            writer.insert("groups", {"courseid": 5, "name": f"g{i}"})
        writer.flush()
        tx.rollback()
    engine.dispose()
    assert _rows(site_url) == {}


@pytest.mark.parametrize("site_url", ["postgresql", "mariadb"], indirect=True)
def test_ids_never_collide_with_another_writer(site_url: str) -> None:
    """Moodle inserting beside the restore, between its rows: on PostgreSQL
    the restore's ids are reserved from the sequence Moodle's inserts take
    theirs from; on MariaDB each row gets the server's id as it is sent."""
    engine = open_engine(site_url)
    other = sa.create_engine(site_url, isolation_level="AUTOCOMMIT")
    theirs: dict[int, str] = {}
    with engine.connect() as conn, conn.begin(), other.connect() as moodle:
        writer = SiteWriter(conn, "mdl_")
        ours = {}
        for i in range(20):
            ours[writer.insert("groups", {"courseid": 5, "name": f"ours{i}"})] = f"ours{i}"
            moodle.exec_driver_sql(
                "INSERT INTO mdl_groups (courseid, name, description, idnumber, timecreated,"
                f" timemodified) VALUES (6, 'theirs{i}', '', '', 0, 0)"
            )
        writer.flush()
        for row in moodle.exec_driver_sql("SELECT id, name FROM mdl_groups WHERE courseid = 6"):
            theirs[int(row[0])] = str(row[1])
    other.dispose()
    engine.dispose()
    assert len(theirs) == 20 and not set(theirs) & set(ours)
    assert _rows(site_url) == {**ours, **theirs}
