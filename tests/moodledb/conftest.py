"""Database servers for the Moodle-schema tests: a private database per test,
dropped after, and the reference site loaded once per session.

The servers are the ones scripts/services starts (COURSEVAULT_TEST_POSTGRES,
COURSEVAULT_TEST_MARIADB); without them the tests skip and say why, except
under CI=true, where a missing server fails them: CI must test what it claims.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

SERVERS = {
    "postgresql": os.environ.get("COURSEVAULT_TEST_POSTGRES"),
    "mariadb": os.environ.get("COURSEVAULT_TEST_MARIADB"),
}
SITE = Path(
    os.environ.get("COURSEVAULT_REFSITE_DIR")
    or Path(__file__).resolve().parents[3] / "shared" / "moodle-site"
)
# scripts/refsite's database (loaded whole, checked against the dump's hash),
# reused when it says so; else this session loads a private copy
REFSITE_PG = os.environ.get("COURSEVAULT_REFSITE_POSTGRES")


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI=true needs it)")
    pytest.skip(f"{what}: run scripts/test (it starts the servers)")


def _with_database(url: str, name: str) -> str:
    return sa.make_url(url).set(database=name).render_as_string(hide_password=False)


def _create_database(url: str, name: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()


def _drop_database(url: str, name: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        force = " WITH (FORCE)" if engine.dialect.name == "postgresql" else ""
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}{force}"))
    engine.dispose()


@pytest.fixture
def scratch_database() -> Iterator[Callable[[str], str]]:
    """``make(kind)`` -> the URL of a new empty database on that server, dropped after."""
    made: list[tuple[str, str]] = []

    def make(kind: str) -> str:
        url = SERVERS[kind]
        if not url:
            _missing(f"no {kind} server")
        assert url
        name = f"cv_test_{uuid.uuid4().hex[:12]}"
        _create_database(url, name)
        made.append((url, name))
        return _with_database(url, name)

    yield make
    for url, name in made:
        _drop_database(url, name)


@pytest.fixture(scope="session")
def reference_site_pg() -> Iterator[str]:
    """The reference Moodle site on PostgreSQL: scripts/refsite's database
    when it exported one, else the dump loaded into a private database for
    this session (about 5 s) and dropped after."""
    if REFSITE_PG:
        yield REFSITE_PG
        return
    url = SERVERS["postgresql"]
    if not url:
        _missing("no postgresql server")
    assert url
    dump = SITE / "site.pgsql.zst"
    if not dump.is_file() or not shutil.which("psql") or not shutil.which("zstd"):
        _missing(f"cannot load {dump} (needs the file, psql and zstd)")
    name = f"cv_test_ref_{uuid.uuid4().hex[:8]}"
    _create_database(url, name)
    target = sa.make_url(_with_database(url, name))
    try:
        zstd = subprocess.Popen(["zstd", "-dc", str(dump)], stdout=subprocess.PIPE)
        subprocess.run(
            [
                "psql",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                target.host or "127.0.0.1",
                "-U",
                target.username or "postgres",
                "-d",
                name,
            ],
            stdin=zstd.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        zstd.wait()
        yield _with_database(url, name)
    finally:
        _drop_database(url, name)
