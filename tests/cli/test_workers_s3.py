"""Many workers, one repository (issue 24): four processes, each with a
cache of its own as a machine has, back up their shard of a Moodle site
into one S3 repository (a real S3 server on loopback) sharing one
PostgreSQL catalog, while a fifth ingests archives into it.  Afterwards
the repository checks clean, and every course's snapshot exports as a
one-process backup of the same site into a folder does -- member by
member, but for the values of the run (backup id and date, archive mtimes).

Both loopback S3 servers: moto's, which honours conditional writes as the
store relies on for concurrent writers, where the repository must check
clean as it is; and ``rclone serve s3``, which does not (docs/format.md
§11): there two writers may take one journal generation, and check may
report the snapshot whose entry was replaced (kind ``journal``) -- the
documented cost, which ``repair journal`` mends, after which it must check
clean too.

The S3 servers and PostgreSQL come from the test scripts; under CI=true
none may be missing.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import CORPUS
from s3server import MotoS3, S3Server

from coursevault.cli.app import main

WORKERS = 4
# the site's arguments, its course ids, the reference snapshot of each
# course, the reference repository's arguments
Demo = tuple[tuple[str, ...], list[int], dict[int, str], tuple[str, ...]]
RUN = "import sys; from coursevault.cli.app import run; sys.argv[0] = 'coursevault'; run()"


@pytest.fixture
def pg_catalog() -> Iterator[str]:
    """A database of its own on the tests' PostgreSQL, for one catalog."""
    url = os.environ.get("COURSEVAULT_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("no PostgreSQL (COURSEVAULT_TEST_POSTGRES): CI=true needs it")
        pytest.skip("no PostgreSQL server: run scripts/test (it starts one)")
    name = f"cv_workers_{secrets.token_hex(4)}"
    admin = sa.create_engine(sa.make_url(url).set(database="postgres"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield str(sa.make_url(url).set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _cli(env: dict[str, str], *argv: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", RUN, *map(str, argv)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, (proc.args, out, err)
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """A demo site of four courses and a one-process backup of it into a
    folder, made once for both servers: the workers only read the site."""
    tmp = tmp_path_factory.mktemp("workers-site")
    site = ("--db", f"sqlite:///{tmp / 'site.db'}", "--dataroot", str(tmp / "moodledata"))
    env = dict(os.environ)
    made = _finished(_cli(env, "demo-site", *site, "--size", "S", "--courses", "4", "--json"))
    folder = ("-r", str(tmp / "reference"), "--cache-dir", str(tmp / "ref-cache"))
    _finished(_cli(env, *folder, "init"))
    ref = _finished(_cli(env, *folder, "backup", *site, "--all", "--json"))
    reference = {o["course_id"]: o["snapshot"] for o in json.loads(ref)}
    return site, json.loads(made)["courses"], reference, folder


@pytest.fixture(params=["moto", "rclone"])
def any_s3(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MotoS3 | S3Server]:
    """Each loopback S3 server: moto (conditional writes) and rclone (none)."""
    if request.param == "rclone":
        yield request.getfixturevalue("s3_server")
        return
    server = MotoS3(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


def test_four_workers_back_a_site_up_into_one_s3_repository(
    demo: Demo,
    any_s3: MotoS3 | S3Server,
    pg_catalog: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dbbackup.mbzcompare import compare_archives

    s3_server = any_s3
    site, courses, reference, folder = demo
    env = {**os.environ, **s3_server.env()}
    repo = f"s3://{s3_server.make_bucket()}/site"
    _finished(_cli(env, "init", repo))
    workers = [
        _cli(env, "--catalog", pg_catalog, "--cache-dir", tmp_path / f"machine-{k}", "-r", repo,
             "backup", *site, "--all", "--shard", f"{k}/{WORKERS}", "--json")
        for k in range(1, WORKERS + 1)
    ]
    archives = [p for p in CORPUS if p.stat().st_size < 100_000][:4]
    ingesting = _cli(env, "--catalog", pg_catalog, "--cache-dir", tmp_path / "machine-ingest",
                     "-r", repo, "ingest", *archives)
    stored = [o for w in workers for o in json.loads(_finished(w))]
    _finished(ingesting)
    assert sorted(o["course_id"] for o in stored) == sorted(courses)
    assert {o["outcome"] for o in stored} == {"stored"}

    # one machine more reads everything back
    here = ("--catalog", pg_catalog, "--cache-dir", tmp_path / "machine-check", "-r", repo)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    checked = main([*map(str, here), "check", "--read-data", "--json"])
    if checked != 0 and isinstance(any_s3, S3Server):
        # without conditional writes: only the journal may be out of step
        problems = json.loads(capsys.readouterr().out)["problems"]
        assert {p["kind"] for p in problems if p["severity"] == "error"} == {"journal"}, problems
        assert main([*map(str, here), "repair", "journal"]) == 0
        checked = main([*map(str, here), "check", "--read-data"])
    assert checked == 0
    for outcome in stored:
        ours, theirs = tmp_path / "ours.mbz", tmp_path / "theirs.mbz"
        assert main([*map(str, here), "export", outcome["snapshot"], "-o", str(ours)]) == 0
        assert main([*folder, "export", reference[outcome["course_id"]], "-o", str(theirs)]) == 0
        comparison = compare_archives(ours, theirs)
        assert comparison.identical, (outcome["course_id"], comparison.table())
