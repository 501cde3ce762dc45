"""Both doors (issue 23): a snapshot ingested from Moodle's own ``.mbz``
restores as one taken by ``backup --db`` does.  The reference site's
courses come back from their Moodle backups ingested, are backed up again
and compared with those backups modulo ids; each agrees in as many members
as the same course restored from the database door (test_roundtrip's
floors), so the door a snapshot came through changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dbbackup.refsite import RefSite

from .roundtrip import round_trip_site
from .sitecopy import SiteCopy
from .test_roundtrip import FLOORS

# a course of each kind: generated with files, every activity with user
# data, a quiz course restored by Moodle from a 2.6 backup
COURSES = ("gen_s", "rich", "MDL-44070B")


def test_an_ingested_backup_restores_as_a_database_backup_does(
    refsite: RefSite, site_copies: Callable[[str], SiteCopy], tmp_path: Path
) -> None:
    courses = [c for c in refsite.courses if c.shortname in COURSES]
    assert len(courses) == len(COURSES)
    trips = round_trip_site(refsite, site_copies("postgres"), courses, tmp_path, door="ingest")
    for name in COURSES:
        trip = trips[name]
        assert trip.restore["left_out"] == [], name
        assert trip.same >= FLOORS["postgres"][name], (name, trip.same, trip.differing())
