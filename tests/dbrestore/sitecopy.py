"""Private copies of the reference site to restore into.

cv_refsite is shared by every worktree on the machine and must never be
written (tests/dbbackup/README.md), so a restore goes into a copy made for
the test run and dropped after it: on PostgreSQL ``CREATE DATABASE ...
TEMPLATE cv_refsite_template`` (a file copy, about a second, of the copy
scripts/refsite keeps, to which no session connects; PostgreSQL refuses a
template any session is connected to, as other tests and worktrees are to
cv_refsite, so without it, after a few tries, the copy is loaded from the
site's dump instead, as scripts/refsite loads it); on MariaDB, which has no
templates, each table is created LIKE the site's and filled from it by
the server (5 s, against 25 for a mysqldump piped back in).  The dataroot
is copied too: a restore writes into its filedir and temp folders.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from dbbackup.refsite import RefSite, copy_template

TEMPLATE_TRIES = 5
HOW = 'run scripts/test, or eval "$(bash scripts/refsite)" first'


def unavailable(what: str) -> NoReturn:
    """Skip: the site (or a server of it) is not there -- or fail under
    CI=true, which must test what it claims to (tests/dbbackup/conftest.py)."""
    message = f"the reference Moodle site: {what} ({HOW})"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; CI=true needs it", pytrace=False)
    pytest.skip(message)


@dataclass(frozen=True)
class SiteCopy:
    """A writable copy of the site: ``url`` for the CLI, its ``dataroot``."""

    server: str
    url: str
    dataroot: Path


def _admin_url(url: str, database: str) -> sa.URL:
    return sa.make_url(url).set(database=database)


def _autocommit(url: sa.URL) -> sa.Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def _postgres_copy(source: str, name: str, site_dir: Path) -> None:
    engine = _autocommit(_admin_url(source, "postgres"))
    with engine.connect() as conn:
        template = copy_template(conn, str(sa.make_url(source).database))
    try:
        for attempt in range(TEMPLATE_TRIES):
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                return
            except sa.exc.OperationalError as exc:
                if "being accessed by other users" not in str(exc):
                    raise
                time.sleep(0.5 * (attempt + 1))
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    _load_postgres_dump(source, name, site_dir)


def _load_postgres_dump(source: str, name: str, site_dir: Path) -> None:
    """The site's dump into the empty database ``name`` (scripts/refsite's load)."""
    url = sa.make_url(source)
    dump = subprocess.Popen(
        ["zstd", "-dc", str(site_dir / "site.pgsql.zst")], stdout=subprocess.PIPE
    )
    psql = [
        "psql",
        "-h",
        url.host or "127.0.0.1",
        "-U",
        url.username or "postgres",
        "-X",
        "-q",
        "-1",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        name,
    ]
    env = {**os.environ, "PGOPTIONS": "-c synchronous_commit=off"}
    loaded = subprocess.run(
        psql, stdin=dump.stdout, stdout=subprocess.DEVNULL, env=env, check=False
    )
    dump.wait()
    if loaded.returncode or dump.returncode:
        raise RuntimeError(f"loading the site's dump into {name} failed")


def _mariadb_copy(source: str, name: str) -> None:
    engine = _autocommit(sa.make_url(source))
    template = sa.make_url(source).database
    try:
        with engine.connect() as conn:
            tables = [
                r[0]
                for r in conn.exec_driver_sql(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (template,),
                )
            ]
            conn.exec_driver_sql(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
            conn.exec_driver_sql("SET unique_checks = 0, foreign_key_checks = 0")
            conn.exec_driver_sql("SET autocommit = 0")
            for t in tables:
                conn.exec_driver_sql(f"CREATE TABLE `{name}`.`{t}` LIKE `{template}`.`{t}`")
                conn.exec_driver_sql(f"INSERT INTO `{name}`.`{t}` SELECT * FROM `{template}`.`{t}`")
            conn.exec_driver_sql("COMMIT")
    finally:
        engine.dispose()


def _drop(server: str, source: str, name: str) -> None:
    if server == "postgres":
        engine = _autocommit(_admin_url(source, "postgres"))
        sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    else:
        engine = _autocommit(sa.make_url(source))
        sql = f"DROP DATABASE IF EXISTS `{name}`"
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


@contextmanager
def site_copy(site: RefSite, server: str, folder: Path, purpose: str) -> Iterator[SiteCopy]:
    """A copy of the site on ``server`` named for this process and
    ``purpose``, with its dataroot copied under ``folder``; dropped after."""
    source = site.url(server)
    if source is None:
        unavailable(f"no {server} database (scripts/refsite said why)")
    name = f"cv_rt_{os.getpid()}_{purpose}"
    _drop(server, source, name)  # a copy a killed run of this pid left
    try:
        if server == "postgres":
            _postgres_copy(source, name, site.dir)
        else:
            _mariadb_copy(source, name)
        dataroot = folder / f"dataroot-{server}-{purpose}"
        shutil.copytree(site.dataroot, dataroot, symlinks=True)
        url = sa.make_url(source).set(database=name).render_as_string(hide_password=False)
        yield SiteCopy(server, url, dataroot)
    finally:
        _drop(server, source, name)
