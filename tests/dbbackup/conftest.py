"""Fixtures of the reference Moodle site (scripts/refsite loads it once).

Without scripts/refsite's variables these fixtures skip, saying how to get
them -- except under CI=true, where they fail: CI must test what it claims
to.  Also ``cv``, the command line run in-process in a fresh repository.
Shared code lives in refsite.py and clirun.py, since no test may import a
conftest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from coursevault.cli.app import main

from .clirun import Result
from .refsite import (
    RefSite,
    RefSiteDatabase,
    backup_key,
    copy_postgres_site,
    drop_postgres_database,
    missing_variables,
    refsite_from_env,
)

SERVERS = ("postgres", "mariadb")
HOW = 'run scripts/test, or eval "$(bash scripts/refsite)" first'


def _unavailable(what: str) -> NoReturn:
    message = f"the reference Moodle site: {what} ({HOW})"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; CI=true needs it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def refsite() -> RefSite:
    """The site: .postgres_url, .mariadb_url (None when left out), .dataroot,
    .dir, .courses (courses.tsv's rows)."""
    missing = missing_variables()
    if missing:
        _unavailable("unset " + ", ".join(missing))
    return refsite_from_env()


@pytest.fixture(scope="session", params=SERVERS)
def refsite_db(request: pytest.FixtureRequest, refsite: RefSite) -> RefSiteDatabase:
    """The site on each server in turn (a test runs once per server)."""
    url = refsite.url(request.param)
    if url is None:
        _unavailable(f"no {request.param} database (scripts/refsite said why)")
    return RefSiteDatabase(request.param, url)


@pytest.fixture(scope="session")
def refsite_backup_key(refsite: RefSite) -> bytes:
    """The key Moodle encrypted the reference backups with (PostgreSQL site)."""
    if refsite.postgres_url is None:
        _unavailable("no postgres database, which holds the backup key")
    key = backup_key(refsite.postgres_url)
    if key is None:
        pytest.fail("the PostgreSQL site has no backup_encryptkey", pytrace=False)
    return key


@pytest.fixture
def refsite_copy(refsite: RefSite) -> Iterator[str]:
    """The URL of a private copy of the PostgreSQL site (cv_inc22_<pid>),
    for a test that writes into a site; dropped afterwards."""
    if refsite.postgres_url is None:
        _unavailable("no postgres database (scripts/refsite said why)")
    url = copy_postgres_site(refsite.postgres_url, refsite.dir, f"cv_inc22_{os.getpid()}")
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[int]]:
    """A demo site of two courses on SQLite, made once a module: (database,
    dataroot, course ids).  A test that changes it works on a copy."""
    from coursevault.moodledb.demosite import build_demo_site

    folder = tmp_path_factory.mktemp("demo-site")
    made = build_demo_site(f"sqlite:///{folder}/site.db", folder / "data", "S", courses=2)
    return folder / "site.db", folder / "data", sorted(made.courses)


@pytest.fixture
def cv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Result]:
    """``cv("backup", ...)`` runs the command in-process, in a new repository
    of its own (tmp_path/repo, COURSEVAULT_REPO), and captures its output."""
    for var in ("COURSEVAULT_REPO", "COURSEVAULT_CATALOG", "COURSEVAULT_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COURSEVAULT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSEVAULT_REPO", str(tmp_path / "repo"))

    def run(*argv: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    assert run("init").code == 0
    return run
