"""Issue 23's round trip on every course of the reference site: restored by
coursevault as a new course, backed up again, equal to Moodle's own backup
of the original modulo ids (roundtrip.py), course by course.

``FLOORS`` is a ratchet: the members that agree today, per server and
course; fewer fails, more passes (and the summary table says to raise the
floor).  gen_s must besides beat Moodle's own round trip (the site README:
725 of 894 members identical after Moodle restores it and backs it up).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dbbackup.mbzcompare import Status
from dbbackup.refsite import RefSite

from .roundtrip import LEFT_OUT_MODULES, CourseTrip, round_trip_site
from .sitecopy import SiteCopy

Trips = Callable[[str], dict[str, CourseTrip]]

SERVERS = ("postgres", "mariadb")
MOODLE_OWN_ROUND_TRIP = {"gen_s": 725}

# server -> course shortname -> members agreeing (identical or equal modulo ids)
FLOORS: dict[str, dict[str, int]] = {
    "postgres": {
        "gen_s": 1029,
        "CI": 94,
        "MDL-44070B": 251,
        "C101": 69,
        "C101_1": 69,
        "sandbox-test": 69,
        "BT": 46,
        "test": 46,
        "2022/23/2 GTI22AN303HU UJG1-MEX - Üzleti jog I.": 62,
        "MDL-61614": 46,
        "SCTC": 65,
        "SCTC_1": 44,
        "aggregated before": 56,
        "aggregated during 0": 56,
        "aggregated during 1": 56,
        "C5": 53,
        "C2": 41,
        "SQO": 56,
        "Course Two_1": 56,
        "Course Two_2": 56,
        "C1": 58,
        "C1_1": 58,
        "Test JS": 43,
        "Scratch": 46,
        "Variant matching": 46,
        "Course Three": 41,
        "Course Four": 41,
        "C1_2": 44,
        "LoadTesting": 316,
        "rich": 493,
    },
    # a few courses only, for time: the site copy alone takes 5-20 s there
    "mariadb": {
        "gen_s": 1029,
        "MDL-44070B": 251,
        "test": 46,
        "2022/23/2 GTI22AN303HU UJG1-MEX - Üzleti jog I.": 62,
        "MDL-61614": 46,
        "SCTC": 65,
        "rich": 461,
    },
}
CASES = [(server, course) for server in SERVERS for course in FLOORS[server]]


@pytest.fixture(scope="module")
def trips(
    refsite: RefSite,
    site_copies: Callable[[str], SiteCopy],
    tmp_path_factory: pytest.TempPathFactory,
) -> Trips:
    """A server's round trip of its FLOORS' courses, made on first use and
    shared by the module's tests."""
    done: dict[str, dict[str, CourseTrip] | BaseException] = {}

    def on(server: str) -> dict[str, CourseTrip]:
        if server not in done:
            try:
                work = tmp_path_factory.mktemp(f"roundtrip-{server}")
                courses = [c for c in refsite.courses if c.shortname in FLOORS[server]]
                done[server] = round_trip_site(refsite, site_copies(server), courses, work)
            except BaseException as exc:  # every test of the server reports it
                done[server] = exc
        found = done[server]
        if isinstance(found, BaseException):
            raise found
        return found

    return on


def test_every_course_has_a_floor(refsite: RefSite) -> None:
    """Every course of the site on PostgreSQL; on MariaDB a few, for time."""
    assert sorted(c.shortname for c in refsite.courses) == sorted(FLOORS["postgres"])
    assert set(FLOORS["mariadb"]) <= set(FLOORS["postgres"])


@pytest.mark.parametrize(("server", "shortname"), CASES)
def test_round_trip(trips: Trips, server: str, shortname: str) -> None:
    """At least as many members agree as the floor says, and gen_s beats
    Moodle's own round trip."""
    trip = trips(server)[shortname]
    floor = FLOORS[server][shortname]
    assert trip.same >= floor, "\n".join(trip.differing())
    assert trip.same >= MOODLE_OWN_ROUND_TRIP.get(shortname, 0)


@pytest.mark.parametrize(("server", "shortname"), CASES)
def test_left_out_activities_count_as_missing(trips: Trips, server: str, shortname: str) -> None:
    """An activity the restore leaves out (of a module in LEFT_OUT_MODULES:
    none of the site's today) is said so, and its members count as missing
    in the comparison, not hidden; any other left out fails."""
    trip = trips(server)[shortname]
    left_out = trip.restore["left_out"]
    assert all(f.split("/")[1].rsplit("_", 1)[0] in LEFT_OUT_MODULES for f in left_out)
    assert len(left_out) == len(trip.left_out_folders())
    assert len(trip.restore["warnings"]) >= len(left_out)
    for path in trip.left_out_members():
        assert trip.comparison.outcome(path).status is Status.MISSING, path


@pytest.mark.parametrize(("server", "shortname"), CASES)
def test_the_new_course_is_named_as_moodle_names_a_copy(
    trips: Trips, server: str, shortname: str
) -> None:
    """``restore_dbops::calculate_course_names``: the shortname taken, the
    first free ``_N`` and `` copy N``."""
    report = trips(server)[shortname].restore
    prefix = f"{shortname}_"
    assert report["shortname"].startswith(prefix), report["shortname"]
    n = report["shortname"].removeprefix(prefix)
    assert n.isdigit() and report["fullname"].endswith(f" copy {n}"), report
