"""The database door's oracle: every course of the reference Moodle site,
backed up from the database and exported, against Moodle's own backup of it
(issue 21).  Every member of a plugin coursevault defines must be
byte-identical but for the run-specific values Moodle itself varies
(mbzcompare.py); the share per plugin is printed at the end of the run.

Runs once on PostgreSQL and once on MariaDB.  MariaDB's copy of the site was
made by Moodle restoring the backups there, so two things cannot match and
are allowed for: it has no backup key (our values are encrypted under a
one-off key, compared by plaintext), and its rich course names SCORM and
IMS content files the shared file store does not hold (test_refsite.py pins
the list).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .refsite import RefSite, RefSiteDatabase
from .sitecheck import SiteBackup, back_up_site, compare_course


@pytest.fixture(scope="module")
def site_backup(
    refsite: RefSite, refsite_db: RefSiteDatabase, tmp_path_factory: pytest.TempPathFactory
) -> SiteBackup:
    return back_up_site(refsite, refsite_db, tmp_path_factory.mktemp(refsite_db.server))


def test_every_course_is_backed_up(refsite: RefSite, site_backup: SiteBackup) -> None:
    assert sorted(site_backup.exports) == sorted(c.pg_id for c in refsite.courses)


def test_members_are_identical_to_moodles(
    refsite: RefSite,
    refsite_db: RefSiteDatabase,
    site_backup: SiteBackup,
    refsite_backup_key: bytes,
) -> None:
    our_key = None  # MariaDB's site has no key: see the module docstring
    failures: list[str] = []
    for course in refsite.courses:
        ours: Path = site_backup.exports[course.pg_id]
        must, _may = compare_course(refsite_db.server, course, ours, refsite_backup_key, our_key,
                                    complete=site_backup.complete[course.pg_id])
        failures += [f"{course.shortname}: {line}" for line in must]
    assert not failures, f"{len(failures)} members differ:\n" + "\n".join(failures[:40])
