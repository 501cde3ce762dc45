"""``demo-site --churn``: one night of activity on a demo site.

What a nightly backup meets on a real site, in small: a few forum replies
and a new discussion, new online-text submissions and grades, one page's
content edited (revision and timemodified bumped), a new file in a resource,
the log lines those actions write, the course's cache revision bumped.  A
night touches only these rows, so a backup after it should store only what
they change.  The night is a function of the site's seed (remembered in
``config_plugins``) and its number, so the same site churned the same
number of times is the same, row for row, on every database.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from coursevault.errors import NotMoodleDatabaseError
from coursevault.moodledb.connect import database_name, open_engine, translated_errors
from coursevault.moodledb.democontent import FileStore, paragraphs
from coursevault.moodledb.democourse import CourseBuilder, SiteIds
from coursevault.moodledb.demosite import BASE_TIME, DEMO_PLUGIN, DemoSiteReport
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
    db_url: str, dataroot: str | Path, prefix: str = DEFAULT_PREFIX
) -> DemoSiteReport:
    """Apply the next night to a demo site made by ``build_demo_site``; one transaction."""
    started = time.perf_counter()
    engine = open_engine(db_url)
    try:
        with translated_errors(engine):
            metadata = moodle_metadata(prefix, tables=CHURN_TABLES)
            with engine.begin() as conn:
                seed, size, night = _demo_state(conn, metadata, prefix, database_name(engine))
                report = DemoSiteReport(database_name(engine), size, seed, night=night)
                writer = RowWriter(conn, metadata, prefix)
                store = FileStore(Path(dataroot))
                counts = NightCounts({})
                for course in _courses(writer):
                    rng = random.Random(f"coursevault demo churn {seed}/{night}/{course}")
                    _churn_course(
                        writer, store, rng, course, BASE_TIME + night * 86400 + 7200, counts
                    )
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
        raise NotMoodleDatabaseError(
            f"database {name} holds no Moodle site (no {prefix}config_plugins table)"
        )
    table = metadata.tables[prefix + "config_plugins"]
    rows = conn.execute(sa.select(table.c.name, table.c.value).where(table.c.plugin == DEMO_PLUGIN))
    state = {r.name: r.value for r in rows}
    if not {"seed", "size", "nights"} <= set(state):
        raise NotMoodleDatabaseError(
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


def _churn_course(
    writer: RowWriter,
    store: FileStore,
    rng: random.Random,
    course: int,
    when: int,
    counts: NightCounts,
) -> None:
    data = SiteData.load()
    modules = {r.name: r.id for r in _select(writer, "modules", "id", "name")}
    cms = _select(writer, "course_modules", "id", "module", "instance", course=course)
    contexts = {
        r.instanceid: r.id for r in _select(writer, "context", "id", "instanceid", contextlevel=70)
    }
    users = sorted({r.userid for r in _course_users(writer, course)})
    userdata = UserDataBuilder(writer, data, rng, when)
    log = _Logger(writer, data, course, counts)
    _forum_night(writer, userdata, rng, course, users, log, counts)
    by_module: dict[str, list[tuple[int, int]]] = {}
    for cm in cms:
        by_module.setdefault(_name(modules, cm.module), []).append((cm.instance, contexts[cm.id]))
    _assign_night(writer, userdata, rng, course, users, by_module["assign"], log, counts)
    page, page_ctx = rng.choice(by_module["page"])
    content = writer.conn.execute(
        sa.select(writer.table("page").c.content, writer.table("page").c.revision).where(
            writer.table("page").c.id == page
        )
    ).one()
    writer.update(
        "page",
        page,
        content=content.content + paragraphs(rng, 1),
        revision=content.revision + 1,
        timemodified=userdata.tick(),
    )
    counts.add("page")
    log.event(
        "\\core\\event\\course_module_updated",
        "core",
        "updated",
        "course_module",
        page_ctx,
        GRADER,
        userdata.time,
    )
    resource, res_ctx = by_module["resource"][0]
    site = SiteIds(1, 2, 1, 3, modules)
    files = CourseBuilder(writer, data, store, rng, site, userdata.tick())
    files.add_file(
        res_ctx,
        "mod_resource",
        "content",
        0,
        "/",
        f"notes-{when}.txt",
        paragraphs(rng, 2, html=False).encode(),
    )
    writer.update("resource", resource, timemodified=userdata.time)
    counts.add("files")
    counts.add("resource")
    writer.update("course", course, cacherev=userdata.tick())
    counts.add("course")


def _name(modules: dict[str, int], module_id: int) -> str:
    return next(name for name, mid in modules.items() if mid == module_id)


def _course_users(writer: RowWriter, course: int) -> list[sa.Row[Any]]:
    enrol, ue = writer.table("enrol"), writer.table("user_enrolments")
    query = (
        sa.select(ue.c.userid)
        .join(enrol, enrol.c.id == ue.c.enrolid)
        .where(enrol.c.courseid == course)
    )
    return list(writer.conn.execute(query))


def _forum_night(
    writer: RowWriter,
    userdata: UserDataBuilder,
    rng: random.Random,
    course: int,
    users: list[int],
    log: _Logger,
    counts: NightCounts,
) -> None:
    """Replies in two discussions and one new discussion, with their log lines."""
    discussions = _select(
        writer, "forum_discussions", "id", "forum", "firstpost", "name", course=course
    )
    forum_ctx = _module_context(writer, course, "forum")
    for d in rng.sample(discussions, min(2, len(discussions))):
        for _ in range(rng.randint(1, 2)):
            user = rng.choice(users)
            post = userdata.add_post(
                d.id, d.firstpost, user, f"Re: {d.name}", f"<p>{paragraphs(rng, 1)[3:-4]}</p>"
            )
            log.event(
                "\\mod_forum\\event\\post_created",
                "mod_forum",
                "created",
                "post",
                forum_ctx,
                user,
                userdata.time,
                post,
            )
            counts.add("forum_posts")
        writer.update("forum_discussions", d.id, timemodified=userdata.time, usermodified=user)
        counts.add("forum_discussions")
    user = rng.choice(users)
    discussion = writer.next_id("forum_discussions")
    name = f"Discussion {len(discussions) + 1}"
    first = userdata.add_post(
        discussion, 0, user, name, f"<p>Message for discussion {len(discussions) + 1}</p>"
    )
    writer.add(
        "forum_discussions",
        userdata.data.row(
            "forum_discussions",
            id=discussion,
            course=course,
            forum=discussions[0].forum if discussions else 1,
            name=name,
            firstpost=first,
            userid=user,
            timemodified=userdata.time,
            usermodified=user,
        ),
    )
    log.event(
        "\\mod_forum\\event\\discussion_created",
        "mod_forum",
        "created",
        "discussion",
        forum_ctx,
        user,
        userdata.time,
        discussion,
    )
    counts.add("forum_posts")
    counts.add("forum_discussions")


def _module_context(writer: RowWriter, course: int, modname: str) -> int:
    modules, cms, ctx = (
        writer.table("modules"),
        writer.table("course_modules"),
        writer.table("context"),
    )
    query = (
        sa.select(ctx.c.id)
        .join(cms, sa.and_(cms.c.id == ctx.c.instanceid, ctx.c.contextlevel == 70))
        .join(modules, modules.c.id == cms.c.module)
        .where(cms.c.course == course, modules.c.name == modname)
        .order_by(ctx.c.id)
    )
    return int(writer.conn.execute(query).scalars().first() or 0)


def _assign_night(
    writer: RowWriter,
    userdata: UserDataBuilder,
    rng: random.Random,
    course: int,
    users: list[int],
    assigns: list[tuple[int, int]],
    log: _Logger,
    counts: NightCounts,
) -> None:
    """Three new submissions to one assignment and two grades for earlier ones."""
    assign, ctx = rng.choice(assigns)
    submitted = {
        r.userid for r in _select(writer, "assign_submission", "userid", assignment=assign)
    }
    graded = {r.userid for r in _select(writer, "assign_grades", "userid", assignment=assign)}
    item = _select(
        writer, "grade_items", "id", courseid=course, itemmodule="assign", iteminstance=assign
    )[0].id
    for user in rng.sample(
        [u for u in users if u not in submitted], min(3, len(users) - len(submitted))
    ):
        submission = userdata.submit(assign, user)
        log.event(
            "\\mod_assign\\event\\assessable_submitted",
            "mod_assign",
            "submitted",
            "assessable",
            ctx,
            user,
            userdata.time,
            submission,
        )
        counts.add("assign_submission")
        counts.add("assignsubmission_onlinetext")
    waiting = sorted(submitted - graded)
    for user in rng.sample(waiting, min(2, len(waiting))):
        grade = userdata.grade(assign, item, user)
        log.event(
            "\\mod_assign\\event\\submission_graded",
            "mod_assign",
            "graded",
            "submission",
            ctx,
            GRADER,
            userdata.time,
            grade,
            user,
        )
        counts.add("assign_grades")
        counts.add("assignfeedback_comments")
        counts.add("grade_grades")


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
        component: str,
        action: str,
        target: str,
        ctx: int,
        user: int,
        when: int,
        objectid: int | None = None,
        related: int | None = None,
    ) -> None:
        self.writer.add(
            "logstore_standard_log",
            self.data.row(
                "logstore_standard_log",
                id=None,
                eventname=eventname,
                component=component,
                action=action,
                target=target,
                objecttable=OBJECT_TABLES.get(target) if objectid else None,
                objectid=objectid,
                crud="c" if action == "created" else "u",
                contextid=ctx,
                contextinstanceid=self.contexts.get(ctx, 0),
                userid=user,
                courseid=self.course,
                relateduserid=related,
                other="null",
                timecreated=when,
            ),
        )
        self.counts.add("logstore_standard_log")
