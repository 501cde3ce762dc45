"""``coursevault demo-site``: a Moodle 4.5 site with courses like tool_generator's.

The database door needs sites to back up that nobody has to install Moodle
for: in the test suite, in the README's demo (SQLite), in benchmarks at sizes
the reference site lacks.  A demo site is created through the same SQLAlchemy
tables a backup reads (``schema.py``), from the reference site's own rows
(``sitedata.py``), and is a function of its seed: the same seed gives the
same rows, ids and files on SQLite, PostgreSQL and MariaDB.

Courses are sized as Moodle's course generator (admin/tool/generator) sizes
them -- S is the reference site's ``gen_s``: 100 users, 10 assignments, 1
forum of 10 discussions of 2 posts, 50 pages, 3 file resources (64 small
files of 16 KiB, 2 files of 4 MiB) -- plus what the first database-backup
issue ships definitions for and tool_generator does not make: labels, urls,
a folder, a glossary with entries, a choice with answers, and user data
(online-text submissions, grades with feedback, choice answers).
"""

from __future__ import annotations

import base64
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from coursevault.errors import BadInputError
from coursevault.moodledb.connect import database_name, open_engine, translated_errors
from coursevault.moodledb.democontent import FIRST_NAMES, LAST_NAMES, FileStore
from coursevault.moodledb.democourse import CourseBuilder, SiteIds, add_context
from coursevault.moodledb.rowwriter import RowWriter
from coursevault.moodledb.schema import DEFAULT_PREFIX, create_schema, moodle_metadata
from coursevault.moodledb.sitedata import SiteData

BASE_TIME = 1788220800  # 2026-09-01 00:00 UTC: every demo time is this plus an offset
DEMO_PLUGIN = "local_cvdemo"  # config_plugins rows remembering seed, size and nights


@dataclass(frozen=True)
class DemoSize:
    """One course generator size (tool_generator's S and M), plus the extras."""

    name: str
    users: int
    assigns: int
    discussions: int
    posts_per_discussion: int
    pages: int
    small_files: int
    small_file_size: int
    big_files: int
    big_file_size: int
    sections: int
    labels: int
    urls: int
    folder_files: int
    glossary_entries: int
    choice_options: int


SIZES = {
    "S": DemoSize("S", 100, 10, 10, 2, 50, 64, 16384, 2, 4 << 20, 10, 3, 2, 3, 20, 4),
    "M": DemoSize("M", 1000, 100, 100, 5, 200, 128, 32768, 5, 16 << 20, 20, 10, 10, 10, 200, 6),
}


@dataclass
class DemoSiteReport:
    """What a demo-site run wrote."""

    database: str
    size: str
    seed: int
    courses: list[int] = field(default_factory=list)
    users: int = 0
    course_modules: int = 0
    files_written: int = 0
    bytes_written: int = 0
    night: int = 0
    at: int = 0  # when a churn night happened (epoch seconds)
    changes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def parse_size(size: str) -> DemoSize:
    try:
        return SIZES[size.upper()]
    except KeyError:
        raise BadInputError(f"unknown demo site size {size!r}: use S or M") from None


# a demo site's courses at most: 50 make the --all benchmark's site; a
# number past all reason wrote gigabytes before it failed
MAX_COURSES = 10_000


def build_demo_site(
    db_url: str,
    dataroot: str | Path,
    size: str = "S",
    seed: int = 1,
    courses: int = 1,
    prefix: str = DEFAULT_PREFIX,
) -> DemoSiteReport:
    """Create Moodle's tables in an empty database and fill them with a demo site.

    Refuses a database holding any table (a Moodle site already, or another
    application's): it never writes into data it did not make.  Everything
    goes in one transaction, so a failed run leaves the database empty; on
    MariaDB/MySQL, whose ``CREATE TABLE`` commits, the tables it made are
    dropped again; the file contents it wrote are removed (those that were
    there before stay).
    """
    dsize = parse_size(size)
    if not 1 <= courses <= MAX_COURSES:
        raise BadInputError(f"--courses must be 1 to {MAX_COURSES:,} (a demo site)")
    started = time.perf_counter()
    engine = open_engine(db_url)
    report = DemoSiteReport(database_name(engine), dsize.name, seed)
    store = FileStore(Path(dataroot))
    _make_sqlite_folder(engine)
    try:
        with translated_errors(engine):
            _refuse_non_empty(engine, prefix)
            metadata = moodle_metadata(prefix)
            try:
                with engine.begin() as conn:
                    create_schema(conn, metadata)
                    writer = RowWriter(conn, metadata, prefix)
                    _fill(writer, store, dsize, seed, courses, report)
                    writer.finish()
            except BaseException:
                if engine.dialect.name in ("mysql", "mariadb"):
                    metadata.drop_all(engine, checkfirst=True)
                raise
            report.files_written, report.bytes_written = store.files_written, store.bytes_written
    except BaseException:
        store.discard()
        raise
    finally:
        engine.dispose()
    report.seconds = time.perf_counter() - started
    return report


def _make_sqlite_folder(engine: sa.Engine) -> None:
    """A new SQLite site's file may be in a folder not made yet (demo/site.db)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        return
    folder = Path(str(database)).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"database folder {folder}: {exc.strerror or exc}") from None


def _refuse_non_empty(engine: sa.Engine, prefix: str) -> None:
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
    if not tables:
        return
    name = database_name(engine)
    if prefix + "config" in tables:
        raise BadInputError(
            f"database {name} already holds a Moodle site: use an empty database, "
            "or --churn to add a night of activity to a demo site"
        )
    raise BadInputError(
        f"database {name} is not empty and holds no Moodle site (no {prefix}config table): "
        "demo-site needs an empty database"
    )


def _fill(
    writer: RowWriter,
    store: FileStore,
    dsize: DemoSize,
    seed: int,
    courses: int,
    report: DemoSiteReport,
) -> None:
    data = SiteData.load()
    rng = random.Random(f"coursevault demo site {seed}")
    _site_rows(writer, data, rng, dsize, seed)
    ids = _site_structure(writer, data)
    users = _users(writer, data, rng, dsize, ids)
    report.users = len(users)
    for number in range(1, courses + 1):
        course_rng = random.Random(f"coursevault demo course {seed}/{number}")
        builder = CourseBuilder(writer, data, store, course_rng, ids, BASE_TIME + 600 * number)
        course_id = builder.build(number, dsize, users)
        report.courses.append(course_id)
        report.course_modules += builder.module_count
    writer.update("course_categories", ids.category_id, coursecount=courses)


def _site_rows(
    writer: RowWriter, data: SiteData, rng: random.Random, dsize: DemoSize, seed: int
) -> None:
    """The reference site's configuration and standard rows, with this site's own secrets."""
    for table, rows in data.site.items():
        for row in rows:
            writer.add(table, dict(row))
    secrets = {
        "siteidentifier": rng.randbytes(16).hex()[:32] + "demo.coursevault",
        "calendar_exportsalt": base64.b64encode(rng.randbytes(45)).decode()[:60],
        "badges_badgesalt": f"badges{BASE_TIME}",
    }
    for name, value in secrets.items():
        writer.add("config", {"id": None, "name": name, "value": value})
    plugin_rows = {
        ("backup", "backup_encryptkey"): base64.b64encode(rng.randbytes(32)).decode(),
        (DEMO_PLUGIN, "seed"): str(seed),
        (DEMO_PLUGIN, "size"): dsize.name,
        (DEMO_PLUGIN, "nights"): "0",
    }
    for (plugin, name), value in plugin_rows.items():
        writer.add("config_plugins", {"id": None, "plugin": plugin, "name": name, "value": value})


def _site_structure(writer: RowWriter, data: SiteData) -> SiteIds:
    """System, site-course and category contexts, and the category, as Moodle's installer makes them."""
    system = add_context(writer, 10, 0, "", 1)
    site_ctx = add_context(writer, 50, 1, f"/{system}", 2)
    category = writer.add(
        "course_categories",
        data.row(
            "course_categories",
            id=None,
            name="Demo courses",
            coursecount=0,
            sortorder=10000,
            timemodified=BASE_TIME,
            path="",
        ),
    )
    category_ctx = add_context(writer, 40, category, f"/{system}", 2)
    writer.flush()
    writer.update("course_categories", category, path=f"/{category}")
    modules = {row["name"]: int(row["id"]) for row in data.site["modules"]}
    return SiteIds(system, site_ctx, category, category_ctx, modules)


def _users(
    writer: RowWriter, data: SiteData, rng: random.Random, dsize: DemoSize, ids: SiteIds
) -> list[int]:
    """tool_generator's users: tool_generator_000001..., manual auth, no password."""
    users = []
    for n in range(1, dsize.users + 1):
        username = f"tool_generator_{n:06d}"
        user_id = writer.add(
            "user",
            data.row(
                "user",
                id=None,
                username=username,
                email=f"{username}@example.com",
                firstname=rng.choice(FIRST_NAMES),
                lastname=rng.choice(LAST_NAMES),
                timecreated=BASE_TIME + 120,
                timemodified=BASE_TIME + 120,
            ),
        )
        users.append(user_id)
    for user_id in [2, *users]:  # the admin's context, then each user's
        add_context(writer, 30, user_id, f"/{ids.system_context}", 2)
    return users
