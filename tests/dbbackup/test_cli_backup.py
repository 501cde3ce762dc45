"""``coursevault backup --db`` as a user runs it: what it stores, what it
says, and how it refuses bad input -- one line, a documented exit code, no
snapshot written (issue 21, "Bad input")."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from coursevault.errors import EXIT_BAD_INPUT, EXIT_SITE

from .clirun import Result
from .refsite import RefSite


def _no_snapshot(cv) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(cv("snapshots", "--json").out) == []


def _backup(cv, refsite: RefSite, *extra: object) -> Result:  # type: ignore[no-untyped-def]
    """``coursevault backup`` of the reference site's PostgreSQL database and file store."""
    return cv("backup", "--db", refsite.postgres_url, "--dataroot", refsite.dataroot, *extra)


def _one_line(result: Result, code: int, *words: str) -> None:
    assert result.code == code, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coursevault: error: "), result.err
    for word in words:
        assert word in lines[0], lines[0]


def test_a_course_is_stored_and_logged(cv, refsite: RefSite) -> None:  # type: ignore[no-untyped-def]
    course = refsite.course("sandbox-test")
    r = _backup(cv, refsite, "--course", course.pg_id, "--json")
    assert r.code == 0, r.err
    [outcome] = json.loads(r.out)
    assert outcome["outcome"] == "stored" and outcome["course_id"] == course.pg_id
    assert outcome["course"].endswith(f"-{course.pg_id}")
    [run] = json.loads(cv("runs", "--json").out)
    assert run["snapshot"] == outcome["snapshot"] and run["outcome"] == "stored"
    listing = cv("ls", f"{outcome['course']}@latest")
    assert "moodle_backup.xml" in listing.out


def test_unreachable_server(cv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dataroot = tmp_path / "dataroot"
    (dataroot / "filedir").mkdir(parents=True)
    r = cv(
        "backup",
        "--db",
        "postgresql://postgres:secret@127.0.0.1:1/moodle",
        "--dataroot",
        dataroot,
        "--course",
        "2",
    )
    _one_line(r, EXIT_SITE, "127.0.0.1:1", "refused")
    assert "secret" not in r.err
    _no_snapshot(cv)


def test_not_a_moodle_database(cv, tmp_path: Path, refsite: RefSite) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    r = cv("backup", "--db", f"sqlite:///{empty}", "--dataroot", refsite.dataroot, "--course", "2")
    _one_line(r, EXIT_SITE, "mdl_config", "prefix")
    _no_snapshot(cv)


def test_a_role_that_does_not_exist_gets_no_prefix_hint(cv, refsite: RefSite) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL's 'role "x" does not exist' ends as a missing table's
    message does; the table-prefix hint would send the user the wrong way."""
    from sqlalchemy.engine import make_url

    url = make_url(refsite.postgres_url).set(username="no_such_role_cv").render_as_string(False)
    r = cv("backup", "--db", url, "--dataroot", refsite.dataroot, "--course", "2")
    _one_line(r, EXIT_SITE, "no_such_role_cv")
    assert "prefix" not in r.err
    _no_snapshot(cv)


def test_wrong_prefix(cv, refsite: RefSite) -> None:  # type: ignore[no-untyped-def]
    r = _backup(cv, refsite, "--course", "2", "--prefix", "moodle_")
    _one_line(r, EXIT_SITE, "moodle_config", "'moodle_'")
    _no_snapshot(cv)


def test_unsupported_moodle_version(cv, tmp_path: Path, refsite: RefSite) -> None:  # type: ignore[no-untyped-def]
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as db:
        db.execute("CREATE TABLE mdl_config (id INTEGER, name TEXT, value TEXT)")
        db.execute(
            "INSERT INTO mdl_config VALUES (1, 'version', '2022112800.00'), "
            "(2, 'release', '4.1 (Build: 20221128)')"
        )
    r = cv("backup", "--db", f"sqlite:///{old}", "--dataroot", refsite.dataroot, "--course", "2")
    _one_line(r, EXIT_SITE, "2022112800", "4.1", "Moodle 4.5")
    _no_snapshot(cv)


def test_course_that_does_not_exist(cv, refsite: RefSite) -> None:  # type: ignore[no-untyped-def]
    r = _backup(cv, refsite, "--course", "9999")
    _one_line(r, EXIT_BAD_INPUT, "course 9999")
    _no_snapshot(cv)
    r = _backup(cv, refsite, "--course", "1")  # it exists: "no such course" was wrong
    _one_line(r, EXIT_BAD_INPUT, "course 1 is the site's front page")
    _no_snapshot(cv)


@pytest.mark.parametrize("where", ["missing", "no-filedir"])
def test_dataroot_without_a_file_store(cv, tmp_path: Path, refsite: RefSite, where: str) -> None:  # type: ignore[no-untyped-def]
    dataroot = tmp_path / "dataroot"
    if where == "no-filedir":
        dataroot.mkdir()
    r = cv("backup", "--db", refsite.postgres_url, "--dataroot", dataroot, "--course", "2")
    _one_line(r, EXIT_SITE, str(dataroot))
    _no_snapshot(cv)


def test_no_course_named(cv, refsite: RefSite) -> None:  # type: ignore[no-untyped-def]
    r = _backup(cv, refsite)
    _one_line(r, EXIT_BAD_INPUT, "--course", "--all")


def test_excluding_every_course_named_is_a_usage_error(cv, refsite: RefSite) -> None:  # type: ignore[no-untyped-def]
    """It exited 0 in silence, having backed nothing up."""
    course = refsite.course("sandbox-test").pg_id
    r = _backup(cv, refsite, "--course", course, "--exclude", course)
    _one_line(r, EXIT_BAD_INPUT, "--exclude leaves none")
    _no_snapshot(cv)


def _member(cv, key: str, path: str) -> str:  # type: ignore[no-untyped-def]
    r = cv("cat", f"{key}@latest", path)
    assert r.code == 0, r.err
    return r.out


def test_anonymize_replaces_who_users_are(cv, refsite: RefSite) -> None:  # type: ignore[no-untyped-def]
    """backup_anonymizer_helper's rules: names, usernames and emails become
    counters; nothing of the real ones is left in users.xml."""
    course = refsite.course("SCTC")
    plain = _backup(cv, refsite, "--course", course.pg_id, "--json")
    key = json.loads(plain.out)[0]["course"]
    real = _member(cv, key, "users.xml")
    emails = set(re.findall(r"<email>([^<]+)</email>", real))
    assert emails and not any(e.endswith("doesntexist.invalid") for e in emails)
    r = _backup(cv, refsite, "--course", course.pg_id, "--anonymize", "--json")
    assert r.code == 0, r.err
    users = _member(cv, key, "users.xml")
    assert (
        "<username>anon1</username>" in users and "<firstname>anonfirstname1</firstname>" in users
    )
    assert not any(e in users for e in emails)
    manifest = _member(cv, key, "moodle_backup.xml")
    assert "<name>anonymize</name>\n        <value>1</value>" in manifest


def test_no_users_leaves_user_data_out(cv, refsite: RefSite) -> None:  # type: ignore[no-untyped-def]
    course = refsite.course("rich")
    r = _backup(cv, refsite, "--course", course.pg_id, "--no-users", "--json")
    assert r.code == 0, r.err
    key = json.loads(r.out)[0]["course"]
    choice = _member(cv, key, "activities/choice_208/choice.xml")
    assert "<answers>\n    </answers>" in choice and "<answer id=" not in choice
    # backup_final_task writes users.xml only when users are included
    assert "users.xml" not in cv("ls", f"{key}@latest").out


def test_anonymize_needs_users(cv, refsite: RefSite) -> None:  # type: ignore[no-untyped-def]
    r = _backup(cv, refsite, "--course", "2", "--no-users", "--anonymize")
    _one_line(r, EXIT_BAD_INPUT, "--anonymize", "--no-users")


def test_a_database_backup_continues_moodles_own_history(cv, refsite: RefSite) -> None:  # type: ignore[no-untyped-def]
    """Both doors name the course alike, so Moodle's own backup ingested and
    then a database backup are two nights of one course, and the diff
    between them is only what Moodle itself varies from run to run."""
    course = refsite.course("sandbox-test")
    assert cv("ingest", course.backup).code == 0
    r = _backup(cv, refsite, "--course", course.pg_id, "--json")
    key = json.loads(r.out)[0]["course"]
    assert [s["course"] for s in json.loads(cv("snapshots", "--json").out)] == [key, key]
    diff = cv("diff", f"{key}@~1", f"{key}@latest").out
    changed_members = [line for line in diff.splitlines() if not line.startswith(" ")]
    assert changed_members == ["M moodle_backup.xml (8531 -> 8531 bytes)"], diff
    fields = {
        line.split(":")[0].strip() for line in diff.splitlines() if line.startswith("        ")
    }
    assert fields == {"name", "backup_date", "@backup_id", "value"}, diff


def test_an_activity_without_a_definition_is_left_out_and_named(  # type: ignore[no-untyped-def]
    cv, refsite: RefSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if mod_label were a third-party module nobody defined: the course
    is stored without it, the run says which course modules it left out."""
    from coursevault.structure import registry

    shipped = dict(registry.activities())
    del shipped["label"]
    monkeypatch.setattr(registry, "activities", lambda: shipped)
    course = refsite.course("sandbox-test")
    r = _backup(cv, refsite, "--course", course.pg_id)
    assert r.code == 0, r.err
    assert "no definition for mod_label: 1 activity left out of the backup" in r.err
    key = json.loads(cv("snapshots", "--json").out)[0]["course"]
    listing = cv("ls", f"{key}@latest").out
    assert "activities/forum_" in listing and "activities/label_" not in listing
    assert "<modulename>label</modulename>" not in _member(cv, key, "moodle_backup.xml")


def test_an_unchanged_night_stores_only_the_run_values(cv, refsite: RefSite) -> None:  # type: ignore[no-untyped-def]
    """Nothing changed in the course: the second snapshot shares every
    member but moodle_backup.xml (its date, id and name), and every file
    content is taken from the store without being read."""
    course = refsite.course("gen_s")
    [first] = json.loads(_backup(cv, refsite, "--course", course.pg_id, "--json").out)
    [second] = json.loads(_backup(cv, refsite, "--course", course.pg_id, "--json").out)
    assert first["files_known"] == 0 and second["files_known"] > 60
    assert second["new_objects"] < 20 < first["new_objects"]
    key = second["course"]
    diff = cv("diff", f"{key}@~1", f"{key}@latest").out
    members = [line for line in diff.splitlines() if not line.startswith(" ")]
    assert len(members) == 1 and members[0].startswith("M moodle_backup.xml "), diff
