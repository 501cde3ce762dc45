"""A demo course restored into another site (SQLite): the users that
site already has are matched as Moodle's precheck_user matches them, and
a merge into the site's front page enrols no one there, as Moodle's own
restore never does."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from .clirun import run_json


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("two-sites")
    repo = ("-r", work / "repo", "--cache-dir", work / "cache")
    a = (f"sqlite:///{work / 'a.db'}", work / "a")
    run_json("demo-site", "--db", a[0], "--dataroot", a[1], "--size", "S", "--seed", "1")
    with sqlite3.connect(work / "a.db") as con:  # an address with capitals, as people type them
        con.execute("UPDATE mdl_user SET email = 'Tool_Generator_000001@Example.com' "
                    "WHERE username = 'tool_generator_000001'")
    run_json(*repo, "init")
    [backup] = run_json(*repo, "backup", "--db", a[0], "--dataroot", a[1], "--all")
    b = work / "b.db"
    run_json("demo-site", "--db", f"sqlite:///{b}", "--dataroot", work / "b", "--size", "S",
             "--seed", "2")
    return {"work": work, "repo": repo, "snapshot": backup["snapshot"], "b": b}


def _site_b(two_sites: dict[str, Any], name: str) -> tuple[str, Path]:
    """A fresh copy of site B (its database and data folder)."""
    work = two_sites["work"]
    shutil.copy(two_sites["b"], work / f"{name}.db")
    if not (work / f"{name}-data").exists():
        shutil.copytree(work / "b", work / f"{name}-data")
    return f"sqlite:///{work / f'{name}.db'}", work / f"{name}-data"


def test_an_email_in_another_case_is_the_same_user(two_sites: dict[str, Any]) -> None:
    """precheck_user 2A1 compares UPPER(email): a site user whose address
    differs only in case was taken for another person, and a duplicate
    account 'tool_generator_000001.restored' made."""
    db, data = _site_b(two_sites, "case")
    path = db.removeprefix("sqlite:///")
    with sqlite3.connect(path) as con:
        (email,) = con.execute(
            "SELECT email FROM mdl_user WHERE username = 'tool_generator_000001'"
        ).fetchone()
        con.execute("UPDATE mdl_user SET email = ? WHERE username = 'tool_generator_000001'",
                    (email.upper(),))
    report = run_json(*two_sites["repo"], "restore", two_sites["snapshot"], "--db", db,
                      "--dataroot", data)
    assert report["users"]["created"] == 0, report["users"]
    with sqlite3.connect(path) as con:
        assert con.execute(
            "SELECT COUNT(*) FROM mdl_user WHERE username LIKE '%.restored%'").fetchone() == (0,)


def test_a_merge_into_the_front_page_enrols_no_one_there(two_sites: dict[str, Any]) -> None:
    db, data = _site_b(two_sites, "front")
    path = db.removeprefix("sqlite:///")
    count = ("SELECT (SELECT COUNT(*) FROM mdl_enrol WHERE courseid = 1), (SELECT COUNT(*) FROM "
             "mdl_user_enrolments ue JOIN mdl_enrol e ON e.id = ue.enrolid WHERE e.courseid = 1)")
    with sqlite3.connect(path) as con:
        before = con.execute(count).fetchone()
    report = run_json(*two_sites["repo"], "restore", two_sites["snapshot"], "--db", db,
                      "--dataroot", data, "--into", "1", "--merge")
    assert report["courseid"] == 1
    with sqlite3.connect(path) as con:
        assert con.execute(count).fetchone() == before
        assert con.execute("SELECT COUNT(*) FROM mdl_course_modules WHERE course = 1"
                           ).fetchone()[0] > 0


def _site_a(two_sites: dict[str, Any], name: str) -> tuple[str, Path]:
    """A fresh copy of site A, the backup's own site."""
    work = two_sites["work"]
    shutil.copy(work / "a.db", work / f"{name}.db")
    if not (work / f"{name}-data").exists():
        shutil.copytree(work / "a", work / f"{name}-data")
    return f"sqlite:///{work / f'{name}.db'}", work / f"{name}-data"


@pytest.mark.parametrize("same_site", [True, False], ids=["same-site-1B", "other-site-2B1"])
def test_a_user_the_site_deleted_is_not_created_again(
    two_sites: dict[str, Any], same_site: bool
) -> None:
    """Moodle's delete_user() keeps the row (deleted 1, username
    '<email>.<time>', email md5(username)); precheck_user maps the backup's
    user to it.  coursevault created a new, active account with the deleted
    person's username, name and address, and gave it a role in the course."""
    import hashlib

    db, data = (_site_a if same_site else _site_b)(two_sites, f"deleted-{same_site}")
    path = db.removeprefix("sqlite:///")
    with sqlite3.connect(path) as con:
        uid, email = con.execute("SELECT id, email FROM mdl_user "
                                 "WHERE username = 'tool_generator_000001'").fetchone()
        # delete_user() names the row by the address lower-cased
        con.execute(
            "UPDATE mdl_user SET deleted = 1, username = ?, email = ?, firstname = '', "
            "lastname = '' WHERE id = ?",
            (f"{email.lower()}.1796000000", hashlib.md5(b"tool_generator_000001").hexdigest(),
             uid))
    report = run_json(*two_sites["repo"], "restore", two_sites["snapshot"], "--db", db,
                      "--dataroot", data)
    assert report["users"]["created"] == 0, report["users"]
    with sqlite3.connect(path) as con:
        assert con.execute(
            "SELECT COUNT(*) FROM mdl_user WHERE username = 'tool_generator_000001' "
            "OR username LIKE 'tool_generator_000001.restored%'").fetchone() == (0,)
        assert con.execute(
            "SELECT COUNT(*) FROM mdl_role_assignments ra JOIN mdl_context x ON x.id = ra.contextid "
            "WHERE ra.userid = ? AND x.contextlevel = 50 AND x.instanceid = ?",
            (uid, report["courseid"])).fetchone() == (0,)
