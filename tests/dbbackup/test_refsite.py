"""The loaded reference site is the one courses.tsv describes, on both
servers, with its file store: what every database-door test stands on."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .refsite import KNOWN_GAPS, MODULE_OVERRIDES, RefSite, RefSiteDatabase


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def test_courses_tsv_lists_the_site_s_backups(refsite: RefSite) -> None:
    assert len(refsite.courses) == 30
    assert {c.shortname for c in refsite.courses} >= {"gen_s", "rich"}
    for course in refsite.courses:
        assert course.backup.is_file(), course.backup
        assert course.backup.name.startswith(f"c{course.pg_id:03d}-")


def test_each_course_has_its_listed_id_and_shortname(
    refsite: RefSite, refsite_db: RefSiteDatabase
) -> None:
    rows = {i: name for i, name in _query(refsite_db.url, "SELECT id, shortname FROM mdl_course")}
    wanted = {c.id_on(refsite_db.server): c.shortname for c in refsite.courses}
    assert {i: rows.get(i) for i in wanted} == wanted
    assert set(rows) == {1, *wanted}  # the site course and nothing unlisted


def test_the_file_store_holds_every_file_the_database_names(
    refsite: RefSite, refsite_db: RefSiteDatabase
) -> None:
    query = "SELECT contenthash, component, filearea FROM mdl_files WHERE filename <> '.'"
    rows = _query(refsite_db.url, query)
    filedir = refsite.dataroot / "filedir"
    missing = {(c, a) for h, c, a in rows if not (filedir / h[:2] / h[2:4] / h).is_file()}
    assert len(rows) > 100
    assert missing == KNOWN_GAPS.get(refsite_db.server, set())


def test_module_role_overrides_are_as_known(refsite_db: RefSiteDatabase) -> None:
    """The role overrides in activity contexts: rich's forum_207 has two on
    PostgreSQL, and Moodle's restore to MariaDB did not recreate them --
    the comparison there excuses exactly this (sitecheck.MARIADB_EXCEPTIONS)."""
    query = (
        "SELECT c.instanceid, rc.roleid, rc.capability, rc.permission"
        " FROM mdl_role_capabilities rc JOIN mdl_context c ON c.id = rc.contextid"
        " WHERE c.contextlevel = 70"
    )
    rows = {tuple(r) for r in _query(refsite_db.url, query)}
    assert rows == MODULE_OVERRIDES[refsite_db.server]
