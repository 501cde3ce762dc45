"""``coursevault restore --db`` as a user runs it, into a private copy of the
reference site: ``--dry-run`` writes nothing and foretells the real restore,
``--json`` has one shape, and bad input gets one line, a documented exit
code and nothing written (issue 23)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dbbackup.clirun import Result
from dbbackup.refsite import RefSite

from coursevault.errors import EXIT_BAD_INPUT, EXIT_SITE

from .clirun import run, run_json
from .sitecopy import SiteCopy

COURSE = "rich"  # users, groups, files, a quiz left out: every part of a report
Repo = tuple[str | Path, ...]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-restore")


@pytest.fixture(scope="module")
def site(site_copies: Callable[[str], SiteCopy]) -> SiteCopy:
    return site_copies("postgres")


@pytest.fixture(scope="module")
def repo(work: Path) -> Repo:
    args: Repo = ("-r", work / "repo", "--cache-dir", work / "cache")
    assert run(*args, "init").code == 0
    return args


@pytest.fixture(scope="module")
def snapshot(refsite: RefSite, repo: Repo) -> str:
    """rich backed up from cv_refsite (never from the copy: it stays as it was)."""
    [outcome] = run_json(
        *repo,
        "backup",
        "--db",
        refsite.postgres_url,
        "--dataroot",
        refsite.dataroot,
        "--course",
        refsite.course(COURSE).pg_id,
    )
    return str(outcome["snapshot"])


def row_counts(url: str) -> dict[str, int]:
    """Every table's exact row count, by name without the prefix."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            tables = sorted(sa.inspect(conn).get_table_names())
            sql = " UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM {t}" for t in tables)
            rows = conn.exec_driver_sql(sql).all()
    finally:
        engine.dispose()
    return {str(t).removeprefix("mdl_"): int(n) for t, n in rows}


def listing(dataroot: Path) -> list[tuple[str, int]]:
    """Every file and folder under the dataroot, with its size."""
    return sorted(
        (
            os.path.relpath(os.path.join(top, name), dataroot),
            os.path.getsize(os.path.join(top, name)),
        )
        for top, dirs, files in os.walk(dataroot)
        for name in [*dirs, *files]
    )


def query(url: str, sql: str, params: dict[str, Any]) -> Any:
    """One value of ``sql``; ``execute`` writes (and commits)."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


def execute(url: str, sql: str, params: dict[str, Any]) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def removed_content(site: SiteCopy, refsite: RefSite) -> str:
    """The content of rich's resource taken out of the copy's file store: the
    restore must write it back from the snapshot, the dry run must not."""
    sha1 = str(
        query(
            site.url,
            "SELECT f.contenthash FROM mdl_files f "
            "JOIN mdl_context x ON x.id = f.contextid AND x.contextlevel = 70 "
            "JOIN mdl_course_modules cm ON cm.id = x.instanceid "
            "WHERE cm.course = :c AND f.component = 'mod_resource' "
            "AND f.filename <> '.'",
            {"c": refsite.course(COURSE).pg_id},
        )
    )
    (site.dataroot / "filedir" / sha1[:2] / sha1[2:4] / sha1).unlink()
    return sha1


@pytest.fixture(scope="module")
def dry_and_real(site: SiteCopy, repo: Repo, snapshot: str, removed_content: str) -> dict[str, Any]:
    """The dry run, then the real restore, with the site's state around each."""
    restore = (*repo, "restore", snapshot, "--db", site.url, "--dataroot", site.dataroot)
    state: dict[str, Any] = {"counts": [row_counts(site.url)], "files": [listing(site.dataroot)]}
    state["dry"] = run_json(*restore, "--dry-run")
    state["counts"].append(row_counts(site.url))
    state["files"].append(listing(site.dataroot))
    state["real"] = run_json(*restore)
    state["counts"].append(row_counts(site.url))
    return state


def test_dry_run_writes_nothing(dry_and_real: dict[str, Any]) -> None:
    before, after_dry, _ = dry_and_real["counts"]
    assert after_dry == before
    assert dry_and_real["files"][1] == dry_and_real["files"][0]
    assert dry_and_real["dry"]["dry_run"] is True and dry_and_real["dry"]["courseid"] < 0


def test_dry_run_reports_what_the_restore_then_does(dry_and_real: dict[str, Any]) -> None:
    dry, real = dry_and_real["dry"], dry_and_real["real"]
    _, before, after = dry_and_real["counts"]
    added = {t: after[t] - before[t] for t in after if after[t] != before[t]}
    assert real["rows"] == added
    assert dry["rows"] == real["rows"]
    for key in ("activities", "left_out", "users", "ids", "unmapped", "warnings"):
        assert dry[key] == real[key], key
    assert dry["files"]["restored"] == real["files"]["restored"]


def test_dry_run_counts_the_contents_it_would_write(dry_and_real: dict[str, Any]) -> None:
    assert dry_and_real["dry"]["files"] == dry_and_real["real"]["files"]


def test_the_restore_writes_back_a_missing_content(
    dry_and_real: dict[str, Any], site: SiteCopy, removed_content: str
) -> None:
    assert dry_and_real["real"]["files"]["contents"] == 1
    path = site.dataroot / "filedir" / removed_content[:2] / removed_content[2:4] / removed_content
    assert path.is_file()
    assert not list((site.dataroot / "temp").glob("coursevault-restore-*"))


def test_json_shape(dry_and_real: dict[str, Any], snapshot: str, site: SiteCopy) -> None:
    real = dry_and_real["real"]
    assert set(real) == {
        "courseid",
        "shortname",
        "fullname",
        "source_course",
        "users",
        "activities",
        "badges",
        "left_out",
        "files",
        "rows",
        "ids",
        "unmapped",
        "warnings",
        "snapshot",
        "course_key",
        "dry_run",
        "seconds",
        "questions",
        "into",
        "date_offset",
        "links",
        "replaced",
        "deleted",
    }
    assert real["snapshot"] == snapshot and real["dry_run"] is False
    assert real["into"] is False and real["date_offset"] == 0
    assert real["replaced"] is False and real["deleted"] == {}
    assert set(real["questions"]) == {"categories", "categories_matched", "questions",
                                      "questions_matched"}
    assert real["questions"]["questions"] >= 10  # rich's bank: 10 entries
    assert real["course_key"].endswith("-38") and real["source_course"] == "38"
    assert real["shortname"] == query(
        site.url, "SELECT shortname FROM mdl_course WHERE id = :i", {"i": real["courseid"]}
    )
    assert set(real["users"]) >= {"matched", "created"} and real["users"]["matched"] == 12
    assert set(real["files"]) == {"restored", "skipped", "contents", "missing"}
    assert all(
        isinstance(n, int) and n > 0 for n in [*real["rows"].values(), *real["ids"].values()]
    )
    assert real["left_out"] == []  # the quiz too, with its question bank
    assert real["rows"]["quiz"] == 1 and real["rows"]["question_usages"] == 3
    assert isinstance(real["seconds"], float)


def _one_line(result: Result, code: int, *words: str) -> None:
    assert result.code == code, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coursevault: error: "), result.err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def nothing_written(site: SiteCopy) -> Iterator[None]:
    """The test's restore writes no row and no file."""
    counts, files = row_counts(site.url), listing(site.dataroot)
    yield
    assert row_counts(site.url) == counts
    assert listing(site.dataroot) == files


@pytest.mark.usefixtures("nothing_written")
def test_unknown_snapshot(repo: Repo, site: SiteCopy) -> None:
    r = run(*repo, "restore", "deadbeef", "--db", site.url, "--dataroot", site.dataroot)
    _one_line(r, EXIT_BAD_INPUT, "deadbeef")


@pytest.mark.usefixtures("nothing_written")
def test_unreachable_database(repo: Repo, snapshot: str, site: SiteCopy) -> None:
    r = run(
        *repo,
        "restore",
        snapshot,
        "--db",
        "postgresql://postgres:secret@127.0.0.1:1/moodle",
        "--dataroot",
        site.dataroot,
    )
    _one_line(r, EXIT_SITE, "127.0.0.1:1")
    assert "secret" not in r.err


@pytest.mark.usefixtures("nothing_written")
def test_a_site_of_another_moodle_release(repo: Repo, snapshot: str, site: SiteCopy) -> None:
    release = query(site.url, "SELECT value FROM mdl_config WHERE name = 'release'", {})
    older = "4.4.3 (Build: 20240916)"
    execute(site.url, "UPDATE mdl_config SET value = :v WHERE name = 'release'", {"v": older})
    try:
        r = run(*repo, "restore", snapshot, "--db", site.url, "--dataroot", site.dataroot)
    finally:
        execute(site.url, "UPDATE mdl_config SET value = :v WHERE name = 'release'", {"v": release})
    _one_line(r, EXIT_BAD_INPUT, "Moodle 4.5", older)


@pytest.mark.usefixtures("nothing_written")
def test_a_site_whose_version_is_not_moodle_45(repo: Repo, snapshot: str, site: SiteCopy) -> None:
    """The release string says 4.5 but the version number does not: the
    tables are another Moodle's, refused as a backup refuses that site."""
    version = query(site.url, "SELECT value FROM mdl_config WHERE name = 'version'", {})
    execute(site.url, "UPDATE mdl_config SET value = :v WHERE name = 'version'",
            {"v": "2024042205.05"})
    try:
        r = run(*repo, "restore", snapshot, "--db", site.url, "--dataroot", site.dataroot)
    finally:
        execute(site.url, "UPDATE mdl_config SET value = :v WHERE name = 'version'",
                {"v": version})
    _one_line(r, EXIT_SITE, "2024042205.05", "Moodle 4.5")


@pytest.mark.usefixtures("nothing_written")
def test_a_category_that_does_not_exist(repo: Repo, snapshot: str, site: SiteCopy) -> None:
    """What was asked of a readable site is not there: bad input, as a
    backup of a course that does not exist (errors.SiteDataError)."""
    r = run(
        *repo,
        "restore",
        snapshot,
        "--db",
        site.url,
        "--dataroot",
        site.dataroot,
        "--category",
        "9999",
    )
    _one_line(r, EXIT_BAD_INPUT, "category 9999")


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_dataroot_without_filedir(
    repo: Repo, snapshot: str, site: SiteCopy, tmp_path: Path, dry_run: bool
) -> None:
    r = run(
        *repo,
        "restore",
        snapshot,
        "--db",
        site.url,
        "--dataroot",
        tmp_path,
        *(["--dry-run"] if dry_run else []),
    )
    _one_line(r, EXIT_SITE, str(tmp_path), "filedir")


def test_replace_on_postgres_gives_every_table_back(
    dry_and_real: dict[str, Any], site: SiteCopy, repo: Repo, snapshot: str
) -> None:
    """``--into --replace`` of the course the restore above made, with the
    same snapshot, on PostgreSQL (whose driver hands the backup's plan,
    run on the restore's connection, typed values, not PHP's text): every
    table holds as many rows as before -- none of the old content left
    beside the new, none lost, no user deleted (test_replace.py checks,
    on SQLite, that no row names the old course modules and contexts)."""
    course = dry_and_real["real"]["courseid"]
    before = row_counts(site.url)
    report = run_json(*repo, "restore", snapshot, "--db", site.url, "--dataroot",
                      site.dataroot, "--into", course, "--replace")
    assert report["replaced"] and report["courseid"] == course
    assert report["deleted"]["course_modules"] == before["course_modules"] - query(
        site.url, "SELECT COUNT(*) FROM mdl_course_modules WHERE course <> :c", {"c": course})
    after = row_counts(site.url)
    # the course's badges were archived as site badges (Moodle keeps them for
    # who earned one), the backup's restored beside them: only those add rows
    added = _rows_of_course_badges(site.url, course)
    assert report["badges"] == added["badge"] > 0
    assert {t: (n, after.get(t)) for t, n in before.items()
            if after.get(t) != n + added.get(t, 0)} == {}


def test_two_replaces_of_one_course_at_once_both_succeed(
    dry_and_real: dict[str, Any], site: SiteCopy, repo: Repo, snapshot: str
) -> None:
    """Two ``--into --replace`` of the same course at once (two processes):
    the second waits for the first's transaction (the course row is held)
    and then replaces what the first wrote.  Without the wait the second
    read the course as it was and failed half-way on a unique key the first
    had just filled (issue 23's adversarial pass)."""
    course = dry_and_real["real"]["courseid"]
    modules = int(query(site.url, "SELECT COUNT(*) FROM mdl_course_modules WHERE course = :c",
                        {"c": course}))
    command = [sys.executable, "-c", "from coursevault.cli.app import run; run()", *map(str, repo),
               "restore", snapshot, "--db", site.url, "--dataroot", str(site.dataroot),
               "--into", str(course), "--replace", "--json"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    done = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], done
    reports = [json.loads(out) for out, _err in done]
    assert all(r["replaced"] and r["courseid"] == course for r in reports)
    # each deleted a whole course's modules: the second, what the first wrote
    assert [r["deleted"]["course_modules"] for r in reports] == [modules, modules]
    assert int(query(site.url, "SELECT COUNT(*) FROM mdl_course_modules WHERE course = :c",
                     {"c": course})) == modules
    sections = query(site.url, "SELECT COUNT(*) - COUNT(DISTINCT section) FROM "
                     "mdl_course_sections WHERE course = :c", {"c": course})
    assert int(sections) == 0


def _rows_of_course_badges(url: str, course: int) -> dict[str, int]:
    """Rows that the badges of ``course`` (restored ones) hold, per table."""
    badges = "SELECT id FROM mdl_badge WHERE courseid = :c"
    sql = {
        "badge": badges.replace("SELECT id", "SELECT COUNT(*)"),
        "badge_criteria": f"SELECT COUNT(*) FROM mdl_badge_criteria WHERE badgeid IN ({badges})",
        "badge_criteria_param": "SELECT COUNT(*) FROM mdl_badge_criteria_param WHERE critid IN "
        f"(SELECT id FROM mdl_badge_criteria WHERE badgeid IN ({badges}))",
        "tag_instance": "SELECT COUNT(*) FROM mdl_tag_instance WHERE component = 'core_badges' "
        f"AND itemtype = 'badge' AND itemid IN ({badges})",
        "files": "SELECT COUNT(*) FROM mdl_files WHERE component = 'badges' "
        f"AND filearea = 'badgeimage' AND itemid IN ({badges})",
    }
    return {table: int(query(url, q, {"c": course})) for table, q in sql.items()}


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_restores_at_once_give_their_courses_distinct_short_names(
    site_copies: Callable[[str], SiteCopy], repo: Repo, snapshot: str, server: str
) -> None:
    """Three restores of one backup at once each read the short names there
    before any had committed, and all three named their course rich_3
    (Moodle keeps short names unique).  They now take turns."""
    site = site_copies(server)
    argv = [sys.executable, "-m", "coursevault.cli.app", *map(str, repo), "restore", snapshot,
            "--db", site.url, "--dataroot", str(site.dataroot), "--json"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(3)]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
        reports.append(json.loads(out))
    names = {r["shortname"] for r in reports}
    assert len(names) == 3, names
    stored = {query(site.url, "SELECT shortname FROM mdl_course WHERE id = :id",
                    {"id": int(r["courseid"])}) for r in reports}
    assert stored == names


def test_a_quiz_merged_again_takes_the_questions_the_course_has(
    dry_and_real: dict[str, Any], site: SiteCopy, repo: Repo, snapshot: str, refsite: RefSite
) -> None:
    """The quiz restored again into the course it was restored to (``--into
    --merge``): its question categories are the course's own (same stamp),
    and each question the course has at that version is taken, as Moodle's
    restore matches them -- no second copy of the bank."""
    course = dry_and_real["real"]["courseid"]
    cmid = query(refsite.postgres_url,
                 "SELECT cm.id FROM mdl_course_modules cm JOIN mdl_modules m ON m.id = cm.module "
                 "WHERE m.name = 'quiz' AND cm.course = :c", {"c": refsite.course(COURSE).pg_id})
    before = row_counts(site.url)
    report = run_json(*repo, "restore", snapshot, "--db", site.url, "--dataroot", site.dataroot,
                      "--into", course, "--merge", "--only", f"activities/quiz_{cmid}")
    after = row_counts(site.url)
    banked = dry_and_real["real"]["questions"]
    assert report["activities"] == 1 and report["rows"]["quiz"] == 1
    assert report["questions"]["categories"] == 0
    assert report["questions"]["categories_matched"] == banked["categories"]
    assert report["questions"]["questions"] == 0
    assert report["questions"]["questions_matched"] == banked["questions"]
    for table in ("question", "question_categories", "question_bank_entries",
                  "question_versions", "question_answers"):
        assert after.get(table) == before.get(table), table
    assert after["quiz"] == before["quiz"] + 1
    assert after["quiz_slots"] > before["quiz_slots"]


def test_lti_secrets_are_restored_decrypted(
    dry_and_real: dict[str, Any], site: SiteCopy, repo: Repo, snapshot: str, refsite: RefSite
) -> None:
    """The LTI tool's resource key and password, which a backup encrypts
    (``encrypted_final_element``), were written as the backup's base64 text:
    a tool no launch could authenticate with.  As Moodle's restore
    (``restore_structure_step::decrypt``): decrypted with the site's backup
    key -- the site's own backup --, or NULL where the key is another's.
    Last in the module: the merged LTI stays in the course."""
    course = dry_and_real["real"]["courseid"]
    lti = "SELECT {} FROM mdl_lti WHERE course = :c ORDER BY id DESC LIMIT 1"
    original = refsite.course(COURSE).pg_id
    for column in ("resourcekey", "password"):
        expected = query(refsite.postgres_url, lti.format(column), {"c": original})
        assert expected, f"the reference site's LTI has no {column}"
        assert query(site.url, lti.format(column), {"c": course}) == expected, column
    cmid = query(refsite.postgres_url,
                 "SELECT cm.id FROM mdl_course_modules cm JOIN mdl_modules m ON m.id = cm.module "
                 "WHERE m.name = 'lti' AND cm.course = :c", {"c": original})
    key = "WHERE plugin = 'backup' AND name = 'backup_encryptkey'"
    mine = query(site.url, f"SELECT value FROM mdl_config_plugins {key}", {})
    execute(site.url, f"UPDATE mdl_config_plugins SET value = :v {key}",
            {"v": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="})  # another site's key
    try:
        report = run_json(*repo, "restore", snapshot, "--db", site.url, "--dataroot",
                          site.dataroot, "--into", course, "--merge", "--only",
                          f"activities/lti_{cmid}")
    finally:
        execute(site.url, f"UPDATE mdl_config_plugins SET value = :v {key}", {"v": mine})
    assert report["activities"] == 1
    for column in ("resourcekey", "password"):
        assert query(site.url, lti.format(column), {"c": course}) is None, column
