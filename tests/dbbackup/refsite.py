"""The reference Moodle site, as scripts/refsite loaded it: where it is, which
courses it holds, and its backup key.

Plain code, not fixtures, so conftest.py, the tests and mbzcompare's command
line share it (pytest forbids importing a conftest).  scripts/refsite exports
the variables; run alone, ``eval "$(bash scripts/refsite)"`` first.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .mbzcrypt import key_from_config

ENV_POSTGRES = "COURSEVAULT_REFSITE_POSTGRES"
ENV_MARIADB = "COURSEVAULT_REFSITE_MARIADB"
ENV_DATAROOT = "COURSEVAULT_REFSITE_DATAROOT"
ENV_DIR = "COURSEVAULT_REFSITE_DIR"

# The MariaDB site's rich course (restored there by Moodle) unpacked its SCORM
# and IMS CP packages again into other JPEG contents (other sizes) that
# filedir.tar.zst lacks: its README says both databases reference only those
# files.  Known, so a backup of rich from MariaDB misses these 15 contents;
# anything else missing is a broken load.  (test_refsite pins it; the MariaDB
# comparison excuses exactly these areas: sitecheck.MARIADB_EXCEPTIONS.)
KNOWN_GAPS = {"mariadb": {("mod_scorm", "content"), ("mod_imscp", "content")}}

# Role overrides in activity contexts (course module id, role, capability,
# permission): rich's forum_207 on PostgreSQL; Moodle's restore to MariaDB
# did not recreate them.  test_refsite pins both; the MariaDB comparison
# excuses exactly this override.
MODULE_OVERRIDES = {
    "postgres": {
        (207, 5, "mod/forum:replypost", -1),
        (207, 5, "mod/forum:createattachment", -1000),
    },
    "mariadb": set(),
}


@dataclass(frozen=True)
class Course:
    """One row of courses.tsv: the course's id on each server (the MariaDB
    site restored some courses in another order), its shortname, and
    Moodle's own backup of it (made on PostgreSQL)."""

    pg_id: int
    maria_id: int
    shortname: str
    backup: Path

    def id_on(self, server: str) -> int:
        return self.pg_id if server == "postgres" else self.maria_id


@dataclass(frozen=True)
class RefSite:
    """The loaded site; a server's URL is None when scripts/refsite left it
    out (not running, or its load failed)."""

    postgres_url: str | None
    mariadb_url: str | None
    dataroot: Path
    dir: Path
    courses: tuple[Course, ...]

    def url(self, server: str) -> str | None:
        return self.postgres_url if server == "postgres" else self.mariadb_url

    def course(self, shortname: str) -> Course:
        return next(c for c in self.courses if c.shortname == shortname)


@dataclass(frozen=True)
class RefSiteDatabase:
    """One server's copy of the site (the ``refsite_db`` fixture): which
    server ("postgres" or "mariadb": ``Course.id_on`` takes it), its URL."""

    server: str
    url: str


def parse_courses(site_dir: Path) -> tuple[Course, ...]:
    """courses.tsv's courses that exist (a failed restore has no ids)."""
    with open(site_dir / "courses.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return tuple(
        Course(
            int(r["courseid"]),
            int(r["maria_courseid"]),
            r["shortname"],
            site_dir / "backups" / r["backup_file"],
        )
        for r in rows
        if r["courseid"].strip()
    )


def missing_variables() -> list[str]:
    """The site's variables that are unset (the databases' are optional here;
    the fixtures that need one say so)."""
    return [v for v in (ENV_DATAROOT, ENV_DIR) if not os.environ.get(v)]


def refsite_from_env() -> RefSite:
    """The site scripts/refsite described (``missing_variables()`` first)."""
    site_dir = Path(os.environ[ENV_DIR])
    return RefSite(
        postgres_url=os.environ.get(ENV_POSTGRES) or None,
        mariadb_url=os.environ.get(ENV_MARIADB) or None,
        dataroot=Path(os.environ[ENV_DATAROOT]),
        dir=site_dir,
        courses=parse_courses(site_dir),
    )


def backup_key(url: str) -> bytes | None:
    """The raw key Moodle encrypts backup elements with on that site, None if
    the site never made one (Moodle makes it at the first encrypted value:
    the MariaDB site, never backed up, has none)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            value = conn.execute(
                sa.text(
                    "SELECT value FROM mdl_config_plugins"
                    " WHERE plugin = 'backup' AND name = 'backup_encryptkey'"
                )
            ).scalar()
    finally:
        engine.dispose()
    return key_from_config(value) if value else None


def copy_template(conn: Any, site: str) -> str:
    """The database to copy the site from: ``SITE_template`` when
    scripts/refsite made it -- a copy no session may connect to, so copying
    it never waits for the tests (or worktrees) reading the site; with the
    site itself as template, copies fell back to loading the dump, 30-40 s
    of a suite run -- else the site."""
    found = conn.exec_driver_sql(
        "SELECT datname FROM pg_database WHERE datname = %s AND NOT datallowconn",
        (f"{site}_template",),
    ).scalar()
    return str(found or site)


def copy_postgres_site(url: str, site_dir: Path, name: str) -> str:
    """A private copy of the PostgreSQL site, database ``name``, for a test
    that writes: a template copy (a fraction of a second), or, while another
    session holds the template open (PostgreSQL copies only an idle one),
    the site's dump loaded again (seconds).  Returns the copy's URL."""
    import subprocess

    import sqlalchemy as sa

    source = sa.engine.make_url(url)
    admin = sa.create_engine(source.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            try:
                template = copy_template(conn, str(source.database))
                conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
                loaded = True
            except sa.exc.OperationalError as exc:
                if "being accessed by other users" not in str(exc):
                    raise
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                loaded = False
    finally:
        admin.dispose()
    if not loaded:
        psql = ["psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", name]
        psql += ["-h", source.host or "127.0.0.1", "-U", source.username or "postgres"]
        psql += ["-p", str(source.port)] if source.port else []
        unpack = subprocess.Popen(
            ["zstd", "-dc", str(site_dir / "site.pgsql.zst")], stdout=subprocess.PIPE
        )
        env = {**os.environ, "PGOPTIONS": "-c synchronous_commit=off"}
        subprocess.run(psql, stdin=unpack.stdout, stdout=subprocess.DEVNULL, check=True, env=env)
        if unpack.wait() != 0:
            raise RuntimeError(f"zstd could not read {site_dir / 'site.pgsql.zst'}")
    return source.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    """Drop a copy ``copy_postgres_site`` made (never the site itself)."""
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    if target.database == "cv_refsite":
        raise ValueError("cv_refsite is the shared site: never dropped by a test")
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    finally:
        admin.dispose()
