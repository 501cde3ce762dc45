"""``restore --into COURSEID --replace`` (issue 23): the course's content
deleted and the backup restored into the course, in one transaction.

On the tiny demo sites (tinysite.py, SQLite): the target site's course 2
is backed up, then replaced with the tiny course of the other site; its
backup must equal that course's backup modulo ids, and no row may still
name one of its old course modules or contexts.  Replaced again with its
own earlier snapshot, every table holds as many rows as before the first
replace: nothing of either content was left behind or lost.  A dry run
reports what the replace deletes and writes nothing; a failure at any
delete (the first and the last: all in the one transaction; every step
with ``COURSEVAULT_RESTORE_FAULTS=all``), publishing the contents and
the commit leaves every table and the file store as they were.  ``--replace`` without ``--into``, with
``--merge`` or with ``--only`` is a usage error (exit 2).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dbbackup.mbzcompare import Comparison
from dbbackup.restorerules import Exceptions

from coursevault import api

from .atomic_helpers import InjectedFault, SiteProbe, SiteState, Steps, install
from .clirun import run, run_json
from .roundtrip import compare_restored
from .tinysite import Tiny

COURSE = 2
# what a replace with the course's own snapshot does not give back as it was:
# the restore records the course's minmaxtouse grade setting, as Moodle's does
NOT_AS_BEFORE = {"grade_settings"}
# users the first replace created stay (with their contexts): users are never deleted
USER_TABLES = {"user", "context"}
# the target site's users a restore matches keep their own profiles (Moodle's
# restore maps a user, never overwrites one): users.xml names them as they are
NOT_COMPARED = {"users.xml"}
# COURSEVAULT_RESTORE_FAULTS=all fails every step of the replace, not a spread
EVERY_STEP = os.environ.get("COURSEVAULT_RESTORE_FAULTS") == "all"
# an id above every row's, so that the replace's new contexts and course
# modules take ids no old row had (SQLite's restore counts on from the highest)
HIGH_ID = 100000
# the content of folder entries ("."), which the demo sites do not store
EMPTY = "da39a3ee5e6b4b0d3255bfef95601890afd80709"


def restore(repo: str, snapshot: str, site: SiteProbe, **options: Any) -> dict[str, Any]:
    request = api.RestoreRequest(selector=snapshot, db_url=site.url, dataroot=site.dataroot,
                                 **options)
    with api.open_repository(repo) as r:
        return api.restore_to_database(r, request)


def backup(repo: Path, site: SiteProbe) -> str:
    [done] = run_json("-r", repo, "backup", "--db", site.url, "--dataroot", site.dataroot,
                      "--course", COURSE)
    return str(done["snapshot"])


def old_content(site: SiteProbe) -> tuple[list[int], list[int]]:
    """The course's course modules and the contexts below its own."""
    with site.engine.connect() as conn:
        path = conn.execute(sa.text("SELECT path FROM mdl_context WHERE contextlevel = 50 "
                                    "AND instanceid = :c"), {"c": COURSE}).scalar_one()
        contexts = [r[0] for r in conn.execute(
            sa.text("SELECT id FROM mdl_context WHERE path LIKE :p"), {"p": f"{path}/%"})]
        cms = [r[0] for r in conn.execute(
            sa.text("SELECT id FROM mdl_course_modules WHERE course = :c"), {"c": COURSE})]
    return cms, contexts


def naming(site: SiteProbe, cms: list[int], contexts: list[int]) -> dict[str, int]:
    """Rows of any table naming one of ``cms`` or ``contexts`` (or being one)."""
    columns = {"contextid": contexts, "parentcontextid": contexts, "coursemoduleid": cms,
               "cmid": cms}
    found: dict[str, int] = {}
    with site.engine.connect() as conn:
        inspector = sa.inspect(conn)
        for table in site.names:
            names = {c["name"] for c in inspector.get_columns(table)}
            checks = [(c, ids) for c, ids in columns.items() if c in names]
            checks += [("id", contexts)] if table == "mdl_context" else []
            checks += [("id", cms)] if table == "mdl_course_modules" else []
            for column, ids in checks:
                count = conn.execute(sa.text(
                    f"SELECT COUNT(*) FROM {table} WHERE {column} IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)), {"ids": ids}).scalar_one()
                if count:
                    found[f"{table}.{column}"] = count
    return found


@dataclass
class Replaced:
    before: SiteState
    report: dict[str, Any]
    comparison: Comparison
    left: dict[str, int]  # rows still naming the old content
    users: tuple[int, int]  # users before, after
    gone: set[str]  # contents no longer in filedir after the replace
    trashed: set[str]  # contents in DATAROOT/trashdir
    unstored: set[str]  # contents a files row names that filedir lacks
    again: dict[str, Any]  # the replace with the course's own earlier snapshot
    after_again: SiteState


@pytest.fixture(scope="module")
def replaced(tiny: Tiny, tmp_path_factory: pytest.TempPathFactory) -> Replaced:
    work = tmp_path_factory.mktemp("replace")
    site = tiny.copy(work / "site")
    repo = work / "repo"
    assert run("-r", repo, "init").code == 0
    with site.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO mdl_context (id, contextlevel, instanceid, path, "
                             "depth) VALUES (:i, 70, 0, '/0', 9)"), {"i": HIGH_ID})
        conn.execute(sa.text("INSERT INTO mdl_course_modules (id, course, module, instance, "
                             "section) VALUES (:i, 0, 0, 0, 0)"), {"i": HIGH_ID})
    before = site.state()
    earlier = backup(repo, site)
    cms, contexts = old_content(site)
    report = restore(tiny.repo, tiny.snapshot, site, into=COURSE, replace=True)
    left = naming(site, cms, contexts)
    ours = backup(repo, site)
    run_json("-r", repo, "export", ours, "-o", work / "ours.mbz")
    run_json("-r", tiny.repo, "export", tiny.snapshot, "-o", work / "theirs.mbz")
    comparison = compare_restored(work / "ours.mbz", work / "theirs.mbz", Exceptions(), report)
    after = site.state()
    users = (before.tables["user"][0], after.tables["user"][0])
    gone = {Path(p).name for p in set(before.filedir) - set(after.filedir)}
    trashed = {p.name for p in (Path(site.dataroot) / "trashdir").rglob("*") if p.is_file()}
    unstored = {h for h in site.named_contents() - {EMPTY}
                if not (Path(site.dataroot) / "filedir" / h[:2] / h[2:4] / h).exists()}
    again = restore(str(repo), earlier, site, into=COURSE, replace=True)
    return Replaced(before, report, comparison, left, users, gone, trashed, unstored, again,
                    site.state())


def test_the_replaced_course_backs_up_as_the_snapshot_restored(replaced: Replaced) -> None:
    differing = {o.path: f"{o.status} {o.first_difference}"
                 for o in replaced.comparison.problems() if o.path not in NOT_COMPARED}
    assert not differing, differing
    assert len(replaced.comparison.outcomes) > 50
    report = replaced.report
    assert report["courseid"] == COURSE and report["replaced"] and report["into"]
    assert report["deleted"]["course_modules"] > 0 and report["deleted"]["context"] > 0
    assert "user" not in report["deleted"]


def test_no_row_names_the_old_content(replaced: Replaced) -> None:
    assert replaced.left == {}
    # the old files' contents no row names any more went to Moodle's trash
    # folder, those a row still names stayed
    assert replaced.gone and replaced.gone == replaced.trashed
    assert replaced.report["files"]["trashed"] == len(replaced.gone)
    assert replaced.unstored == set()
    before, after = replaced.users
    assert after == before + replaced.report["users"]["created"]  # none deleted


def test_replaced_by_its_own_snapshot_every_table_is_as_before(replaced: Replaced) -> None:
    counts = {t: n for t, (n, _d) in replaced.before.tables.items()}
    again = {t: n for t, (n, _d) in replaced.after_again.tables.items()}
    differing = {t: (counts.get(t), again.get(t)) for t in set(counts) | set(again)
                 if counts.get(t) != again.get(t) and t not in NOT_AS_BEFORE | USER_TABLES}
    assert not differing, differing
    created = replaced.report["users"]["created"]
    assert {t: again[t] - counts[t] for t in USER_TABLES} == dict.fromkeys(USER_TABLES, created)
    assert replaced.after_again.filedir.keys() >= replaced.before.filedir.keys()


def test_dry_run_reports_the_deletes_and_writes_nothing(tiny: Tiny, tmp_path: Path,
                                                        replaced: Replaced) -> None:
    site = tiny.copy(tmp_path / "site")
    before = site.state()
    # a dry run takes no write lock: another writer's open transaction does not stop it
    holder = sqlite3.connect(site.url.removeprefix("sqlite:///"), timeout=0,
                             isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    try:
        dry = restore(tiny.repo, tiny.snapshot, site, into=COURSE, replace=True, dry_run=True)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert time.monotonic() - started < 60
    assert dry["dry_run"] and dry["replaced"]
    assert dry["deleted"] == replaced.report["deleted"]
    # its reads see the site as the deletes would leave it: the same restore
    real_files = {k: n for k, n in replaced.report["files"].items() if k != "trashed"}
    assert (dry["rows"], dry["files"]) == (replaced.report["rows"], real_files)
    assert not before.differences(site.state())


def test_a_fault_anywhere_in_a_replace_leaves_the_site_as_it_was(
    tiny: Tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tiny.copy(tmp_path / "site")
    before = site.state()
    steps = Steps()
    install(steps, monkeypatch.setattr)
    steps.reset("commit")
    with pytest.raises(InjectedFault):
        restore(tiny.repo, tiny.snapshot, site, into=COURSE, replace=True)
    log = steps.log
    kinds = [s.split()[0] for s in log]
    deletes = [i + 1 for i, k in enumerate(kinds) if k == "delete"]
    assert deletes == list(range(1, len(deletes) + 1)), "the deletes come first"
    points = {deletes[0], deletes[-1], kinds.index("publish") + 1, len(log)}
    for k in range(1, len(log) + 1) if EVERY_STEP else sorted(points):
        steps.reset(k)
        with pytest.raises(InjectedFault):
            restore(tiny.repo, tiny.snapshot, site, into=COURSE, replace=True)
        assert steps.log == log[:k], f"step {k}: the replace took other steps"
        changes = before.differences(site.state())
        assert not changes, f"a failure at step {k} ({log[k - 1]}):\n" + "\n".join(changes)


@pytest.mark.parametrize("options", [
    ("--replace",), ("--into", "2", "--merge", "--replace"),
    ("--into", "2", "--replace", "--only", "activities/forum_1"),
], ids=["without-into", "with-merge", "with-only"])
def test_replace_needs_into_alone(tmp_path: Path, options: tuple[str, ...]) -> None:
    result = run("-r", tmp_path / "repo", "restore", "abc", "--db", "sqlite:///nowhere.db",
                 "--dataroot", tmp_path, *options)
    assert result.code == 2, result
    assert "--replace" in result.err and len(result.err.strip().splitlines()) == 1


def test_the_api_refuses_replace_without_into(tiny: Tiny, tmp_path: Path) -> None:
    site = tiny.copy(tmp_path / "site")
    for options in ({"replace": True}, {"replace": True, "into": COURSE, "only": ("x",)}):
        with pytest.raises(api.UsageError):
            restore(tiny.repo, tiny.snapshot, site, **options)


def test_the_front_page_is_not_replaced(tiny: Tiny, tmp_path: Path) -> None:
    site = tiny.copy(tmp_path / "site")
    before = site.state()
    result = run("-r", tiny.repo, "restore", tiny.snapshot, "--db", site.url, "--dataroot",
                 site.dataroot, "--into", "1", "--replace")
    assert result.code == 2 and "front page" in result.err, result
    assert len(result.err.strip().splitlines()) == 1
    assert not before.differences(site.state())


@pytest.mark.parametrize(("how", "says"), [("--merge", "merged"), ("--replace", "replaced")])
def test_a_dry_run_into_a_course_names_that_course(
    tiny: Tiny, tmp_path: Path, how: str, says: str
) -> None:
    site = tiny.copy(tmp_path / "site")
    result = run("-r", tiny.repo, "restore", tiny.snapshot, "--db", site.url, "--dataroot",
                 site.dataroot, "--into", str(COURSE), how, "--dry-run")
    assert result.code == 0, result
    line = result.out.strip().splitlines()[-1]
    assert f"as course {COURSE}" in line and says in line and "new course" not in line, line


THIRD_PARTY = (  # a module Moodle 4.5 does not ship, in course 2's first section
    "INSERT INTO mdl_modules (id, name, visible) VALUES (900, 'foocustom', 1)",
    "CREATE TABLE mdl_foocustom (id INTEGER PRIMARY KEY, course BIGINT NOT NULL, "
    "name VARCHAR(255))",
    "CREATE TABLE mdl_foocustom_entries (id INTEGER PRIMARY KEY, foocustomid BIGINT, "
    "text TEXT)",
    "INSERT INTO mdl_foocustom VALUES (1, 2, 'a third-party activity')",
    "INSERT INTO mdl_foocustom_entries VALUES (1, 1, 'its user data')",
    "INSERT INTO mdl_course_modules (id, course, module, instance, section) VALUES "
    "(5000, 2, 900, 1, (SELECT id FROM mdl_course_sections WHERE course = 2 AND section = 1))",
    "UPDATE mdl_course_sections SET sequence = sequence || ',5000' "
    "WHERE course = 2 AND section = 1",
    "INSERT INTO mdl_context (id, contextlevel, instanceid, path, depth) VALUES (9000, 70, "
    "5000, (SELECT path FROM mdl_context WHERE contextlevel = 50 AND instanceid = 2) "
    "|| '/9000', 4)",
)


def test_a_third_party_module_is_replaced_with_a_warning(tiny: Tiny, tmp_path: Path) -> None:
    """A module of a plugin Moodle 4.5 does not ship (its table unknown to
    the schema): its instance row, course module and context go, its other
    tables stay, and the dry run says so too -- it once failed the real
    replace with "table 'foocustom' is not a Moodle 4.5 table" (exit 2)."""
    site = tiny.copy(tmp_path / "site")
    with site.engine.begin() as conn:
        for statement in THIRD_PARTY:
            conn.execute(sa.text(statement))
    for dry_run in (True, False):
        report = restore(tiny.repo, tiny.snapshot, site, into=COURSE, replace=True,
                         dry_run=dry_run)
        assert report["deleted"]["foocustom"] == 1, report["deleted"]
        assert any("mod_foocustom has no definition" in w for w in report["warnings"])
    with site.engine.connect() as conn:
        def count(sql: str) -> int:
            return int(conn.execute(sa.text(sql)).scalar_one())
        assert count("SELECT COUNT(*) FROM mdl_foocustom") == 0
        assert count("SELECT COUNT(*) FROM mdl_course_modules WHERE id = 5000") == 0
        assert count("SELECT COUNT(*) FROM mdl_context WHERE id = 9000") == 0
        assert count("SELECT COUNT(*) FROM mdl_foocustom_entries") == 1


def test_two_replaces_of_one_course_at_once_both_succeed_on_sqlite(
    tiny: Tiny, tmp_path: Path
) -> None:
    """Two ``--into --replace`` of one course at once, two processes, on
    SQLite: the second waits for the first's write lock (its transaction
    takes it as it begins) and then replaces what the first wrote; before,
    it read the course, then failed with "database is locked" when it came
    to write."""
    site = tiny.copy(tmp_path / "site")
    modules = _count(site, "SELECT COUNT(*) FROM mdl_course_modules WHERE course = :c")
    command = [sys.executable, "-c", "from coursevault.cli.app import run; run()",
               "-r", tiny.repo, "restore", tiny.snapshot, "--db", site.url, "--dataroot",
               site.dataroot, "--into", str(COURSE), "--replace", "--json"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    done = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], done
    restored = json.loads(done[0][0])["activities"]
    assert [json.loads(out)["replaced"] for out, _err in done] == [True, True]
    assert _count(site, "SELECT COUNT(*) FROM mdl_course_modules WHERE course = :c") == restored
    assert modules > 0


def _count(site: SiteProbe, sql: str) -> int:
    with site.engine.connect() as conn:
        return int(conn.execute(sa.text(sql), {"c": COURSE}).scalar_one())


EMPTY_COURSE = (  # a course as "Add a new course" leaves it: its row, context and section 0
    "INSERT INTO mdl_course (id, category, fullname, shortname) VALUES (3, 1, 'Empty', 'empty')",
    "INSERT INTO mdl_context (contextlevel, instanceid, path, depth) VALUES (50, 3, '', 3)",
    "UPDATE mdl_context SET path = (SELECT path FROM mdl_context WHERE contextlevel = 40 "
    "AND instanceid = 1) || '/' || id WHERE contextlevel = 50 AND instanceid = 3",
    "INSERT INTO mdl_course_sections (course, section, sequence) VALUES (3, 0, '')",
)


def test_a_course_without_activities_is_replaced(tiny: Tiny, tmp_path: Path) -> None:
    """A course with no course module (new and empty, or one whose
    activities were all deleted): the dry run and the replace once both
    failed with "internal error: KeyError: 'course_modules'"."""
    site = tiny.copy(tmp_path / "site")
    with site.engine.begin() as conn:
        for statement in EMPTY_COURSE:
            conn.execute(sa.text(statement))
    for dry_run in (True, False):
        result = run("-r", tiny.repo, "restore", tiny.snapshot, "--db", site.url,
                     "--dataroot", site.dataroot, "--into", "3", "--replace", "--json",
                     *(["--dry-run"] if dry_run else []))
        assert result.code == 0, result
        report = json.loads(result.out)
        assert report["replaced"] and report["courseid"] == 3 and report["activities"] > 0
    with site.engine.connect() as conn:
        restored = conn.execute(sa.text(
            "SELECT COUNT(*) FROM mdl_course_modules WHERE course = 3")).scalar_one()
    assert restored == report["activities"]
