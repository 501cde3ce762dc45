"""The round trip on SQLite, without servers: a demo site's course backed
up, restored as a new course into the same site, backed up again, equal to
the first backup modulo ids (roundtrip.compare_restored)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from dbbackup.restorerules import Exceptions

from .clirun import run, run_json
from .roundtrip import compare_restored

# What coursevault's restore does not yet give back, member by member
# (the course's minmaxtouse grade setting, once missing, is restored now)
NOT_GIVEN_BACK: set[str] = set()


@pytest.fixture(scope="module")
def sqlite_trip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("sqlite-trip")
    db, dataroot = f"sqlite:///{work / 'site.db'}", work / "dataroot"
    repo = ("-r", work / "repo", "--cache-dir", work / "cache")
    site = run_json(
        "demo-site", "--db", db, "--dataroot", dataroot, "--size", "S", "--courses", "2"
    )
    badges = _add_badges(work / "site.db", int(site["courses"][0]))
    assert run(*repo, "init").code == 0
    [first] = run_json(
        *repo, "backup", "--db", db, "--dataroot", dataroot, "--course", site["courses"][0]
    )
    report = run_json(*repo, "restore", first["snapshot"], "--db", db, "--dataroot", dataroot)
    [second] = run_json(
        *repo, "backup", "--db", db, "--dataroot", dataroot, "--course", report["courseid"]
    )
    for name, outcome in (("first", first), ("second", second)):
        run_json(*repo, "export", outcome["snapshot"], "-o", work / f"{name}.mbz")
    comparison = compare_restored(work / "second.mbz", work / "first.mbz", Exceptions(), report)
    restored = _badge_rows(work / "site.db", int(report["courseid"]))
    return {"site": site, "report": report, "comparison": comparison, "badges": badges,
            "restored_badges": restored}


def _add_badges(db: Path, course: int) -> dict[str, Any]:
    """Two course badges with every part badges.xml holds but tags (rich's
    round trip has one): criteria naming an activity, a role and the course,
    an endorsement, an alignment, each other as related, a manual award."""
    con = sqlite3.connect(db)
    cmid = con.execute("SELECT MIN(id) FROM mdl_course_modules WHERE course = ?",
                       (course,)).fetchone()[0]
    users = [r[0] for r in con.execute(
        "SELECT DISTINCT ue.userid FROM mdl_user_enrolments ue JOIN mdl_enrol e "
        "ON e.id = ue.enrolid WHERE e.courseid = ? ORDER BY ue.userid LIMIT 2", (course,))]
    ids = []
    for name, status in (("Finisher", 1), ("Helper", 0)):
        ids.append(con.execute(
            "INSERT INTO mdl_badge (name, description, timecreated, timemodified, usercreated, "
            "usermodified, issuername, issuerurl, type, courseid, message, messagesubject, "
            "status, version) VALUES (?, 'd', 1700000000, 1700000100, 2, 2, 'Issuer', "
            "'http://x', 2, ?, 'm', 's', ?, '1')", (name, course, status)).lastrowid)
    criteria = [(ids[0], 0, []), (ids[0], 1, [(f"module_{cmid}", str(cmid)),
                                              (f"bydate_{cmid}", "1700000000")]),
                (ids[0], 2, [("role_5", "5")]), (ids[1], 4, [(f"course_{course}", str(course))])]
    for badge, kind, params in criteria:
        crit = con.execute("INSERT INTO mdl_badge_criteria (badgeid, criteriatype, method, "
                           "descriptionformat) VALUES (?, ?, 1, 0)", (badge, kind)).lastrowid
        for name, value in params:
            con.execute("INSERT INTO mdl_badge_criteria_param (critid, name, value) "
                        "VALUES (?, ?, ?)", (crit, name, value))
    con.execute("INSERT INTO mdl_badge_endorsement (badgeid, issuername, issuerurl, "
                "issueremail, dateissued) VALUES (?, 'E', 'http://e', 'e@x', 1700000000)",
                (ids[0],))
    con.execute("INSERT INTO mdl_badge_alignment (badgeid, targetname, targeturl) "
                "VALUES (?, 'T', 'http://t')", (ids[0],))
    con.executemany("INSERT INTO mdl_badge_related (badgeid, relatedbadgeid) VALUES (?, ?)",
                    [(ids[0], ids[1]), (ids[1], ids[0])])
    con.execute("INSERT INTO mdl_badge_manual_award (badgeid, recipientid, issuerid, "
                "issuerrole, datemet) VALUES (?, ?, ?, 5, 1700000000)", (ids[0], *users))
    con.commit()
    con.close()
    return {"cmid": cmid, "users": users}


def _badge_rows(db: Path, course: int) -> dict[str, list[tuple[Any, ...]]]:
    con = sqlite3.connect(db)
    badges = "SELECT id FROM mdl_badge WHERE courseid = ?"
    out = {
        "badge": con.execute("SELECT name, type, status, usercreated FROM mdl_badge "
                             "WHERE courseid = ? ORDER BY id", (course,)).fetchall(),
        "param": con.execute(
            "SELECT c.criteriatype, p.name, p.value FROM mdl_badge_criteria_param p JOIN "
            f"mdl_badge_criteria c ON c.id = p.critid WHERE c.badgeid IN ({badges}) "
            "ORDER BY p.id", (course,)).fetchall(),
        "related": con.execute(
            "SELECT a.name, b.name FROM mdl_badge_related r JOIN mdl_badge a ON a.id = r.badgeid "
            "JOIN mdl_badge b ON b.id = r.relatedbadgeid WHERE a.courseid = ? ORDER BY r.id",
            (course,)).fetchall(),
        "award": con.execute(f"SELECT recipientid, issuerid, issuerrole FROM "
                             f"mdl_badge_manual_award WHERE badgeid IN ({badges})",
                             (course,)).fetchall(),
    }
    named = [int(value) for kind, name, value in out["param"] if name.startswith("module_")]
    out["module"] = con.execute(  # the course of the module a criterion names
        "SELECT id, course FROM mdl_course_modules WHERE id = ?", named[:1]).fetchall()
    con.close()
    return out


def test_the_restored_course_backs_up_as_the_original(sqlite_trip: dict[str, Any]) -> None:
    comparison = sqlite_trip["comparison"]
    differing = {o.path: f"{o.status} {o.first_difference}" for o in comparison.problems()}
    assert set(differing) == NOT_GIVEN_BACK, differing
    assert len(comparison.outcomes) > 1000


def test_the_report_says_what_was_restored(sqlite_trip: dict[str, Any]) -> None:
    report = sqlite_trip["report"]
    assert report["courseid"] not in sqlite_trip["site"]["courses"]
    assert report["left_out"] == [] and report["warnings"] == [] and report["unmapped"] == {}
    assert report["users"]["created"] == 0 and report["users"]["matched"] > 100
    assert report["rows"]["course"] == 1 and report["rows"]["assign_submission"] > 0
    # every file record names a content the site already holds: none copied
    assert report["files"]["restored"] > 0 and report["files"]["contents"] == 0


def test_badges_come_back_inactive_and_pointing_at_the_new_course(
    sqlite_trip: dict[str, Any],
) -> None:
    """restore_badges_structure_step: badges.xml agrees above (status aside:
    Moodle restores every badge inactive); here the rows themselves."""
    rows, course = sqlite_trip["restored_badges"], sqlite_trip["report"]["courseid"]
    assert sqlite_trip["report"]["badges"] == 2
    assert rows["badge"] == [("Finisher", 2, 0, 2), ("Helper", 2, 0, 2)]
    [(cmid, in_course)] = rows["module"]
    assert in_course == course and cmid != sqlite_trip["badges"]["cmid"]
    assert rows["param"] == [
        (1, f"module_{cmid}", str(cmid)), (1, f"bydate_{cmid}", "1700000000"),
        (2, "role_5", "5"), (4, f"course_{course}", str(course))]
    assert rows["related"] == [("Finisher", "Helper"), ("Helper", "Finisher")]
    assert rows["award"] == [(*sqlite_trip["badges"]["users"], 5)]
