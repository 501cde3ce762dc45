"""``demo-site --churn``: one night of activity on a demo site.

What a nightly backup meets on a real site, in small: a few forum replies
and a new discussion, new online-text submissions and grades, one page's
content edited (revision and timemodified bumped), a new file in a resource,
the log lines those actions write, the course's cache revision bumped.  A
night touches only these rows, so a backup after it should store only what
they change.  The night is a function of the site's seed (remembered in
``config_plugins``) and its number, so the same site churned the same
number of times is the same, row for row, on every database -- at the time
the night is given (``when``).  By default a night happens now: Moodle's
"skip unmodified courses" (and ``backup --skip-unmodified``) looks for log
lines newer than the last backup, so a night dated in the past would be
invisible to it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from coursevault.errors import BadInputError, SiteError
from coursevault.moodledb.connect import database_name, open_engine, translated_errors
from coursevault.moodledb.democontent import FileStore, paragraphs, sentence
from coursevault.moodledb.democourse import FileArea, add_file
from coursevault.moodledb.demosite import DEMO_PLUGIN, DemoSiteReport
from coursevault.moodledb.demouserdata import GRADER, UserDataBuilder
from coursevault.moodledb.rowwriter import RowWriter
from coursevault.moodledb.schema import DEFAULT_PREFIX, moodle_metadata
from coursevault.moodledb.sitedata import SiteData

CHURN_TABLES = (
    "config_plugins",
    "course",
    "course_modules",
    "modules",
    "context",
    "enrol",
    "user_enrolments",
    "forum",
    "forum_discussions",
    "forum_posts",
    "assign",
    "assign_submission",
    "assignsubmission_onlinetext",
    "assign_grades",
    "assignfeedback_comments",
    "grade_items",
    "grade_grades",
    "page",
    "resource",
    "files",
    "logstore_standard_log",
)


@dataclass
class NightCounts:
    """Rows a night added or changed, by table."""

    counts: dict[str, int]

    def add(self, table: str, n: int = 1) -> None:
        self.counts[table] = self.counts.get(table, 0) + n


def churn_demo_site(
    db_url: str, dataroot: str | Path, prefix: str = DEFAULT_PREFIX, when: int | None = None
) -> DemoSiteReport:
    """Apply the next night to a demo site made by ``build_demo_site``, in one
    transaction, at ``when`` (epoch seconds; default now)."""
    from coursevault.moodledb.filedir import require_file_store

    started = time.perf_counter()
    at = int(time.time()) if when is None else int(when)
    engine = open_engine(db_url, existing=True)
    try:
        with translated_errors(engine, prefix):
            metadata = moodle_metadata(prefix, tables=CHURN_TABLES)
            with engine.begin() as conn:
                seed, size, night = _demo_state(conn, metadata, prefix, database_name(engine))
                # the night's new file goes where the site's others are, not
                # into a folder made for it (a mistyped --dataroot)
                require_file_store(str(dataroot))
                report = DemoSiteReport(database_name(engine), size, seed, night=night, at=at)
                writer = RowWriter(conn, metadata, prefix)
                store = FileStore(Path(dataroot))
                counts = NightCounts({})
                data = SiteData.load()
                for course in _courses(writer):
                    rng = random.Random(f"coursevault demo churn {seed}/{night}/{course}")
                    if _churn_course(writer, data, store, rng, course, (at, night), counts):
                        report.courses.append(course)
                _set_night(writer, night)
                writer.finish()
            report.changes = dict(sorted(counts.counts.items()))
            report.files_written, report.bytes_written = store.files_written, store.bytes_written
    finally:
        engine.dispose()
    report.seconds = time.perf_counter() - started
    return report


def _demo_state(
    conn: sa.Connection, metadata: sa.MetaData, prefix: str, name: str
) -> tuple[int, str, int]:
    if not sa.inspect(conn).has_table(prefix + "config_plugins"):
        raise SiteError(f"database {name} holds no Moodle site (no {prefix}config_plugins table)")
    table = metadata.tables[prefix + "config_plugins"]
    rows = conn.execute(sa.select(table.c.name, table.c.value).where(table.c.plugin == DEMO_PLUGIN))
    state = {r.name: r.value for r in rows}
    if not {"seed", "size", "nights"} <= set(state):
        raise BadInputError(
            f"database {name} is a Moodle site, not a demo site: --churn only changes demo sites"
        )
    return int(state["seed"]), str(state["size"]), int(state["nights"]) + 1


def _set_night(writer: RowWriter, night: int) -> None:
    table = writer.table("config_plugins")
    writer.conn.execute(
        sa.update(table)
        .where(table.c.plugin == DEMO_PLUGIN, table.c.name == "nights")
        .values(value=str(night))
    )


def _courses(writer: RowWriter) -> list[int]:
    course = writer.table("course")
    return list(
        writer.conn.execute(
            sa.select(course.c.id).where(course.c.id != 1).order_by(course.c.id)
        ).scalars()
    )


def _select(writer: RowWriter, table: str, *columns: str, **where: Any) -> list[sa.Row[Any]]:
    t = writer.table(table)
    query = sa.select(*(t.c[c] for c in columns)).order_by(t.c.id)
    for column, value in where.items():
        query = query.where(t.c[column] == value)
    return list(writer.conn.execute(query))


@dataclass
class _Night:
    """One course's night: where it writes, what it knows of the course, what it counted."""

    writer: RowWriter
    data: SiteData
    store: FileStore
    rng: random.Random
    course: int
    users: list[int]
    userdata: UserDataBuilder
    log: _Logger
    counts: NightCounts
    # module name -> [(instance id, context id)], in course-module order
    modules: dict[str, list[tuple[int, int]]]


# the modules a night changes (each night needs one of each)
CHURNED_MODULES = ("forum", "assign", "page", "resource")


def _churn_course(
    writer: RowWriter,
    data: SiteData,
    store: FileStore,
    rng: random.Random,
    course: int,
    night_at: tuple[int, int],
    counts: NightCounts,
) -> bool:
    """One night of the course; False, and nothing changed, for a course
    the demo did not make (a restored one: no users, or not the modules a
    night changes)."""
    names = {r.id: r.name for r in _select(writer, "modules", "id", "name")}
    contexts = {
        r.instanceid: r.id for r in _select(writer, "context", "id", "instanceid", contextlevel=70)
    }
    modules: dict[str, list[tuple[int, int]]] = {}
    for cm in _select(writer, "course_modules", "id", "module", "instance", course=course):
        modules.setdefault(names[cm.module], []).append((cm.instance, contexts[cm.id]))
    users = sorted({r.userid for r in _course_users(writer, course)})
    if not users or not all(modules.get(kind) for kind in CHURNED_MODULES):
        return False
    night = _Night(
        writer, data, store, rng, course,
        users=users,
        # every write at the night's time: a clock ticking on from it put log
        # lines up to 100 s later, so a backup right after the night was not
        # the last word (--skip-unmodified backed the course up again); one
        # started before it, as a minute before it did when the night wrote
        # few lines, so a backup made just before the night skipped it
        userdata=UserDataBuilder(writer, data, rng, night_at[0], until=night_at[0]),
        log=_Logger(writer, data, course, counts),
        counts=counts,
        modules=modules,
    )  # fmt: skip
    _forum_night(night)
    _assign_night(night)
    _page_night(night)
    _resource_night(night, night_at[1])
    writer.update("course", course, cacherev=night.userdata.tick())
    counts.add("course")
    return True


def _page_night(night: _Night) -> None:
    """A teacher adds a paragraph to one page: its content, revision and time change."""
    page, ctx = night.rng.choice(night.modules["page"])
    table = night.writer.table("page")
    query = sa.select(table.c.content, table.c.revision).where(table.c.id == page)
    old = night.writer.conn.execute(query).one()
    when = night.userdata.tick()
    content = old.content + paragraphs(night.rng, 1)
    night.writer.update("page", page, content=content, revision=old.revision + 1, timemodified=when)
    night.counts.add("page")
    night.log.event("\\core\\event\\course_module_updated", ctx, GRADER, when)


def _resource_night(night: _Night, number: int) -> None:
    """A new file in the course's first resource."""
    resource, ctx = night.modules["resource"][0]
    stamp = night.userdata.tick()
    content = paragraphs(night.rng, 2, html=False).encode()
    area = FileArea(ctx, "mod_resource", "content")
    add_file(
        night.writer, night.data, night.store, area, f"notes-night{number}.txt", content, stamp
    )
    night.writer.update("resource", resource, timemodified=stamp)
    night.counts.add("files")
    night.counts.add("resource")


def _course_users(writer: RowWriter, course: int) -> list[sa.Row[Any]]:
    enrol, ue = writer.table("enrol"), writer.table("user_enrolments")
    query = (
        sa.select(ue.c.userid)
        .join(enrol, enrol.c.id == ue.c.enrolid)
        .where(enrol.c.courseid == course)
    )
    return list(writer.conn.execute(query))


def _forum_night(night: _Night) -> None:
    """Replies in two discussions and one new discussion, with their log lines."""
    rng, userdata, counts = night.rng, night.userdata, night.counts
    columns = ("id", "forum", "firstpost", "name")
    discussions = _select(night.writer, "forum_discussions", *columns, course=night.course)
    forum, ctx = night.modules["forum"][0]
    for d in rng.sample(discussions, min(2, len(discussions))):
        for _ in range(rng.randint(1, 2)):
            user = rng.choice(night.users)
            message = f"<p>{sentence(rng)}</p>"
            post = userdata.add_post(d.id, d.firstpost, user, f"Re: {d.name}", message)
            night.log.event("\\mod_forum\\event\\post_created", ctx, user, userdata.time, post)
            counts.add("forum_posts")
        night.writer.update(
            "forum_discussions", d.id, timemodified=userdata.time, usermodified=user
        )
        counts.add("forum_discussions")
    user, number = rng.choice(night.users), len(discussions) + 1
    discussion = night.writer.next_id("forum_discussions")
    name, message = f"Discussion {number}", f"<p>Message for discussion {number}</p>"
    first = userdata.add_post(discussion, 0, user, name, message)
    row = night.data.row(
        "forum_discussions", id=discussion, course=night.course, forum=forum, name=name,
        firstpost=first, userid=user, timemodified=userdata.time, usermodified=user,
    )  # fmt: skip
    night.writer.add("forum_discussions", row)
    night.log.event("\\mod_forum\\event\\discussion_created", ctx, user, userdata.time, discussion)
    counts.add("forum_posts")
    counts.add("forum_discussions")


def _assign_night(night: _Night) -> None:
    """Three new submissions to one assignment and two grades for earlier ones."""
    writer, rng, userdata, counts = night.writer, night.rng, night.userdata, night.counts
    assign, ctx = rng.choice(night.modules["assign"])
    submitted = {
        r.userid for r in _select(writer, "assign_submission", "userid", assignment=assign)
    }
    graded = {r.userid for r in _select(writer, "assign_grades", "userid", assignment=assign)}
    items = _select(
        writer, "grade_items", "id", courseid=night.course, itemmodule="assign", iteminstance=assign
    )
    newcomers = [u for u in night.users if u not in submitted]
    for user in rng.sample(newcomers, min(3, len(newcomers))):
        submission = userdata.submit(assign, user)
        night.log.event(
            "\\mod_assign\\event\\assessable_submitted", ctx, user, userdata.time, submission
        )
        counts.add("assign_submission")
        counts.add("assignsubmission_onlinetext")
    waiting = sorted(submitted - graded)
    for user in rng.sample(waiting, min(2, len(waiting))):
        grade = userdata.grade(assign, items[0].id, user)
        night.log.event(
            "\\mod_assign\\event\\submission_graded", ctx, GRADER, userdata.time, grade, user
        )
        counts.add("assign_grades")
        counts.add("assignfeedback_comments")
        counts.add("grade_grades")


# what Moodle's events name as their object table, by target
OBJECT_TABLES = {
    "post": "forum_posts",
    "discussion": "forum_discussions",
    "assessable": "assign_submission",
    "submission": "assign_grades",
}


class _Logger:
    """Log store lines for a night's actions (what ``--skip-unmodified`` looks at)."""

    def __init__(self, writer: RowWriter, data: SiteData, course: int, counts: NightCounts) -> None:
        self.writer, self.data, self.course, self.counts = writer, data, course, counts
        self.contexts = {
            r.id: r.instanceid
            for r in _select(writer, "context", "id", "instanceid", contextlevel=70)
        }

    def event(
        self,
        eventname: str,
        ctx: int,
        user: int,
        when: int,
        objectid: int | None = None,
        related: int | None = None,
    ) -> None:
        """A line as Moodle writes it for ``\\component\\event\\target_action``."""
        component = eventname.split("\\")[1]
        target, action = eventname.rsplit("\\", 1)[1].rsplit("_", 1)
        row = self.data.row(
            "logstore_standard_log", id=None, eventname=eventname, component=component,
            action=action, target=target, objectid=objectid,
            objecttable=OBJECT_TABLES.get(target) if objectid else None,
            crud="c" if action in ("created", "submitted") else "u", contextid=ctx,
            contextinstanceid=self.contexts.get(ctx, 0), userid=user, courseid=self.course,
            relateduserid=related, other="null", timecreated=when,
        )  # fmt: skip
        self.writer.add("logstore_standard_log", row)
        self.counts.add("logstore_standard_log")
