"""Anonymised exports restore (issue 25): every course of the reference
site, as Moodle backed it up, ingested, exported ``--anonymize``, ingested
again and restored straight into the site -- with its users created anew
under their pseudonyms (none of them matches a real user), nothing left
out, and none of the original users' names in what was written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from dbbackup.refsite import RefSite
from lxml import etree

from coursevault.moodle2.archive import iter_members

from .clirun import run_json
from .sitecopy import SiteCopy


def _users(archive: Path) -> list[etree._Element]:
    _layout, members = iter_members(str(archive))
    for info, stream in members:
        if info.path == "users.xml":
            return list(etree.fromstring(stream.read()).iter("user"))
    return []


def test_every_anonymised_course_restores_with_new_users(
    refsite: RefSite, site_copies: Callable[[str], SiteCopy], tmp_path: Path
) -> None:
    copy = site_copies("postgres")
    engine = sa.create_engine(copy.url)
    with engine.connect() as conn:
        last_course = conn.execute(sa.text("SELECT MAX(id) FROM mdl_course")).scalar_one()
    repo = ("-r", tmp_path / "repo", "--cache-dir", tmp_path / "cache")
    run_json(*repo, "init")
    restored = created = 0
    for course in refsite.courses:
        snap = run_json(*repo, "ingest", course.backup)["snapshot"]
        anon = tmp_path / f"c{course.pg_id}-anon.mbz"
        run_json(*repo, "export", snap, "-o", anon, "--anonymize")
        again = run_json(*repo, "ingest", anon, "--course", f"anon-{course.pg_id}")["snapshot"]
        report = run_json(*repo, "restore", again, "--db", copy.url, "--dataroot", copy.dataroot)
        assert report["left_out"] == [], (course.shortname, report["left_out"])
        users = _users(anon)
        if users:
            real = [u for u in users if not (u.findtext("username") or "").startswith("anon")]
            assert not real, course.shortname  # pseudonyms only
            assert report["users"]["created"] + report["users"].get("matched", 0) == len(users)
            created += report["users"]["created"]
        restored += 1
    assert restored == len(refsite.courses) == 30
    assert created > 100
    with engine.connect() as conn:
        names = {
            r[0]
            for r in conn.execute(
                sa.text("SELECT username FROM mdl_user WHERE username LIKE 'anon%'")
            )
        }
        graders = {
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT DISTINCT u.username FROM mdl_grade_grades gg"
                    " JOIN mdl_grade_items gi ON gi.id = gg.itemid"
                    " JOIN mdl_user u ON u.id = gg.usermodified WHERE gi.courseid > :c"
                ),
                {"c": last_course},
            )
        }
    engine.dispose()
    assert len(names) >= 100
    # who last changed a grade is a restored user (or no one), in the
    # activities' grades and the gradebook's alike: never the backup's id
    assert graders and graders <= names, graders - names
