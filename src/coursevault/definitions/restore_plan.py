"""A course backup restored as a new course, in Moodle's order of dependencies.

``restore_plan_builder`` runs the root task (roles, users), the course task,
the section tasks, the activity tasks, the final task.  What is restored
first is what later rows refer to: roles and users before anything that
names a user, groups before the modules and posts that name groups, the
course and its context before the sections, a section before its
modules, a module's row before its activity's tables, the activities'
grade items before the gradebook's categories they are filed under, every
row before files.xml (whose item ids name them).  References that still
point forward -- a discussion's first post, a section's sequence,
availability conditions, a grade item's category -- are written by the
after-restore pass (``resolve_deferred`` and ``finish_course``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from coursevault.definitions import (
    course_structures,
    restore_badges,
    restore_common,
    restore_course,
    restore_dates,
    restore_final,
    restore_links,
    restore_merge,
    restore_questions,
    restore_replace,
    restore_users,
)
from coursevault.definitions.restore_activity import restore_activity
from coursevault.definitions.restore_blocks import restore_blocks
from coursevault.definitions.restore_files import BackupMembers, restore_files
from coursevault.definitions.restore_info import (
    MANIFEST,
    ActivityInfo,
    BackupInfo,
    SectionInfo,
    has_legacy_question_bank,
    read_backup_info,
    require_course_backup,
)
from coursevault.definitions.run import check_version
from coursevault.errors import BadInputError, SiteError
from coursevault.moodledb.filedir import Staging
from coursevault.moodledb.site import SiteReader
from coursevault.moodledb.sitewriter import SiteWriter
from coursevault.structure import registry
from coursevault.structure.context import SETTINGS, BackupRun, SiteInfo, TaskContext, site_hash
from coursevault.structure.restore_engine import IdMap, RestoreContext

# (backup release, site release) pairs the definitions read and write alike
# Since 4.0 a backup's question bank has entries and versions, as 4.5's does;
# older releases' fields differ more (tested on the corpus: tests/dbrestore)
COMPATIBLE = {(f"4.{minor}", "4.5") for minor in range(6)}
# modules whose rows name the question bank's (questions.xml is restored for them)
QUESTION_USERS = ("quiz", "qbank")


@dataclass
class RestoreOptions:
    category: int | None = None
    shortname: str | None = None
    fullname: str | None = None
    users: bool = True
    now: int = 0
    start_date: int | None = None  # the new start date: dates move with it
    into: int | None = None  # merge into this existing course
    replace: bool = False  # with into: the course's content deleted first
    only: tuple[str, ...] = ()  # activity and section folders to restore


@dataclass
class RestoreReport:
    courseid: int = 0
    shortname: str = ""
    fullname: str = ""
    source_course: str = ""
    into: bool = False
    date_offset: int = 0
    links: int = 0  # texts whose link markers were decoded
    # one shape whether users came or not (``--json`` readers index it)
    users: dict[str, Any] = field(
        default_factory=lambda: restore_users.UserOutcome().as_dict())
    activities: int = 0
    badges: int = 0
    left_out: list[str] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)
    questions: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    replaced: bool = False
    deleted: dict[str, int] = field(default_factory=dict)  # rows --replace deleted, per table
    # contents of the files rows --replace deleted: to the trash once committed,
    # those no row names any more (not reported)
    released: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "released"}


def site_release(writer: SiteWriter) -> str:
    """The site's release string, once its version number is one the
    definitions write (run.check_version, as a backup checks it)."""
    row = writer.one("config", {"name": "release"})
    version = writer.one("config", {"name": "version"})
    check_version(str(version["value"]) if version and version.get("value") else None,
                  str(row["value"]) if row else None)
    if row is None or not row.get("value"):  # a site that cannot be used, as for a backup
        raise SiteError("the database has no Moodle release in its config table")
    return str(row["value"])


def check_release(writer: SiteWriter, info: BackupInfo, questions: bytes | None = None) -> None:
    """Refuse, naming both releases, a backup the definitions do not read:
    of a release not paired with the site's in ``COMPATIBLE``, or of a 4.0
    development build whose ``questions`` (questions.xml) predate 4.0's
    question bank (its questions would be lost, not restored)."""
    site = site_release(writer)
    branch = ".".join(site.split(" ")[0].rstrip("+").split(".")[:2])
    made = sorted({b for b, s in COMPATIBLE if s == branch}, key=_release_key)
    can = (
        f"backups of Moodle {made[0]} to {made[-1]} into Moodle {branch}"
        if made
        else f"into Moodle {', '.join(sorted({s for _b, s in COMPATIBLE}))} only"
    )
    if (info.release, branch) not in COMPATIBLE:
        raise BadInputError(
            f"the backup was made by Moodle {info.release or '?'} and the site runs Moodle "
            f"{site}: coursevault restores {can}"
        )
    if questions is not None and has_legacy_question_bank(questions):
        raise BadInputError(
            f"the backup was made by Moodle {info.moodle_release or info.release}, whose question "
            f"bank is older than Moodle 4.0's (questions without bank entries and versions), and "
            f"the site runs Moodle {site}: coursevault restores {can}"
        )


def _release_key(release: str) -> tuple[int, ...]:
    return tuple(int(p) for p in release.split(".") if p.isdigit())


def restore_course_backup(
    writer: SiteWriter, members: BackupMembers, options: RestoreOptions, staging: Staging | None
) -> RestoreReport:
    """Restore ``members`` -- as a new course, or into ``options.into`` --
    inside the writer's transaction."""
    manifest = members.xml(MANIFEST)
    if manifest is None:
        raise BadInputError(f"the snapshot has no {MANIFEST}: not a Moodle course backup")
    info = read_backup_info(manifest)
    check_release(writer, info, members.xml("questions.xml"))
    require_course_backup(info)
    rc = RestoreContext(
        writer, IdMap(), {"now": options.now}, users=options.users and info.setting("users")
    )
    rc.params["samesite"] = _same_site(writer, info)  # is_samesite(), for the steps that ask
    if options.start_date is not None and info.course_startdate:
        rc.date_offset = options.start_date - info.course_startdate
        rc.is_date = restore_dates.is_date
    ctx = _build_context(writer, rc.users)
    report = RestoreReport(source_course=info.course_id)
    contexts: dict[str, int] = {}
    rc.later["contexts"] = [contexts]  # quiz set references map their context
    sections, activities = restore_merge.select(info, options.only)
    if options.into is not None:
        courseid, coursectx = restore_merge.existing_course(rc, options.into)
        if options.replace:
            _replace(rc, courseid, coursectx, report)
        else:
            rc.overrides.update(restore_merge.HOOKS)
            rc.params["merge"] = True
    if options.only:
        rc.overrides.update(restore_merge.PART_HOOKS)
    _root_task(rc, members, info, report, contexts, options)
    if options.replace and options.into is not None:
        restore_replace.reset_course(
            rc, _need(members, "course/course.xml"), courseid, coursectx, options.start_date
        )
    if options.into is None:
        courseid, coursectx = restore_course.create_course(
            rc,
            _need(members, "course/course.xml"),
            category=options.category,
            shortname=options.shortname,
            fullname=options.fullname,
            now=options.now,
            start_date=options.start_date,
        )
    rc.params.update(courseid=courseid, coursecontextid=coursectx, contextid=coursectx)
    ctx.run.course["id"] = str(courseid)
    ctx.params.update(courseid=str(courseid), contextid=str(coursectx))
    contexts[info.course_contextid] = coursectx
    rc.ids.set("course", info.course_id, courseid)
    chosen = Selection(info, sections, activities, options)
    _course_task(rc, ctx, members, chosen, report, contexts)
    _final_task(rc, ctx, members, contexts, staging, report, whole=chosen.whole)
    rc.resolve_deferred()
    restore_course.finish_course(rc, courseid)
    report.links = restore_links.decode_links(rc, courseid)
    if options.into is not None and not options.replace:
        restore_merge.finish_merge(rc, courseid, options.now)
    course = writer.one("course", {"id": courseid}) if not writer.dry_run else None
    report.courseid = courseid
    report.into = options.into is not None
    report.date_offset = rc.date_offset
    report.shortname = str(course["shortname"]) if course else ""
    report.fullname = str(course["fullname"]) if course else ""
    report.rows, report.ids = dict(sorted(writer.counts.items())), rc.ids.counts()
    report.unmapped, report.warnings = dict(rc.unmapped), rc.warnings
    return report


def _root_task(
    rc: RestoreContext,
    members: BackupMembers,
    info: BackupInfo,
    report: RestoreReport,
    contexts: dict[str, int],
    options: RestoreOptions,
) -> None:
    roles = members.xml("roles.xml")
    if roles is not None:
        restore_final.map_roles(rc, roles)
    if rc.users and members.exists("users.xml"):
        outcome = restore_users.restore_users(
            rc,
            lambda: _need_stream(members, "users.xml"),
            same_site=_same_site(rc.writer, info),
            now=options.now,
        )
        contexts.update(outcome.contexts)
        report.users = outcome.as_dict()


@dataclass
class Selection:
    """What of the backup's course is restored, and how."""

    info: BackupInfo
    sections: list[SectionInfo]
    activities: list[ActivityInfo]
    options: RestoreOptions

    @property
    def whole(self) -> bool:
        return not self.options.only


def _course_task(
    rc: RestoreContext,
    ctx: TaskContext,
    members: BackupMembers,
    chosen: Selection,
    report: RestoreReport,
    contexts: dict[str, int],
) -> None:
    for member, restore in (
        ("scales.xml", restore_final.restore_scales),
        ("outcomes.xml", restore_final.restore_outcomes),
    ):
        data = members.xml(member)
        if data is not None:
            restore(rc, data)
    groups = members.xml("groups.xml")
    if groups is not None:
        restore_final.restore_groups(rc, ctx, groups)
    questions = members.xml("questions.xml")
    if questions is not None and (
        chosen.whole or any(a.modulename in QUESTION_USERS for a in chosen.activities)
    ):
        report.questions = restore_questions.restore_questions(
            rc, ctx, questions, same_site=_same_site(rc.writer, chosen.info)
        )
    for section in chosen.sections:
        data = _need(members, f"{section.directory}/section.xml")
        if not _existing_section(rc, chosen.options, data):
            restore_course.restore_section(rc, data)
    plugins = registry.activities()
    for act in chosen.activities:
        plugin = plugins.get(act.modulename)
        if plugin is None:
            report.left_out.append(act.directory)
            rc.warnings.append(
                f"{act.directory}: no definition for module {act.modulename!r}: left out"
            )
            continue
        if restore_activity(rc, ctx, act, plugin, members.xml, contexts, members.stream):
            report.activities += 1
            restore_blocks(rc, ctx, act.directory, members.xml, members.folders, contexts)
        else:
            report.left_out.append(act.directory)
    restore_questions.move_module_categories(rc, contexts)
    restore_questions.finish_questions(rc)
    if not chosen.whole:
        return  # one activity or section: the course's own members stay as they are
    roles = members.xml("roles.xml")
    if roles is not None:
        restore_final.restore_role_names(rc, roles)
    # these two grow with the course's users (an M course: 260 KB each)
    enrolments = members.stream("course/enrolments.xml")
    if enrolments is not None:
        restore_final.restore_enrolments(rc, ctx, enrolments)
    course_roles = members.stream("course/roles.xml")
    if course_roles is not None:
        restore_final.restore_roles(rc, ctx, "course/roles.xml", course_roles)
    comments = members.xml("course/comments.xml")
    if comments is not None:
        restore_common.restore_comments(rc, ctx, "course/comments.xml", comments)
    calendar = members.xml("course/calendar.xml")
    if calendar is not None:
        restore_common.restore_calendar(
            rc,
            course_structures.calendar_structure(ctx),
            "course/calendar.xml",
            calendar,
            instance=0,
        )
    restore_blocks(rc, ctx, "course", members.xml, members.folders, contexts)


def _replace(rc: RestoreContext, courseid: int, coursectx: int, report: RestoreReport) -> None:
    """``--replace``: the course's content deleted, as its backup reads it."""
    removal = restore_replace.plan_removal(rc.writer, courseid, coursectx)
    restore_replace.remove(rc.writer, removal)
    rc.params["section_zero"] = removal.section_zero
    rc.warnings.extend(removal.warnings)
    report.replaced, report.deleted = True, removal.counts()
    report.released = removal.contents


def _existing_section(rc: RestoreContext, options: RestoreOptions, data: bytes) -> bool:
    """The backup's section written over one the course has: its section 0
    on a replace, the section of its number on a merge."""
    if options.into is None:
        return False
    if options.replace:
        return restore_replace.replace_section(rc, data, rc.params.get("section_zero"))
    return restore_merge.merge_section(rc, data) is not None


def _final_task(
    rc: RestoreContext,
    ctx: TaskContext,
    members: BackupMembers,
    contexts: dict[str, int],
    staging: Staging | None,
    report: RestoreReport,
    *,
    whole: bool,
) -> None:
    completion = members.xml("completion.xml")
    # execute_condition: the whole backup, and no module of it missing
    if completion is not None and whole and not report.left_out:
        restore_common.restore_course_completion(rc, ctx, completion)
    badges = members.xml("badges.xml")
    # execute_condition: badges enabled, the whole backup, no module missing
    if badges is not None and whole and not report.left_out and restore_badges.badges_enabled(rc):
        report.badges = restore_badges.restore_badges(rc, ctx, badges)
    gradebook = members.xml("gradebook.xml")
    if gradebook is not None:
        restore_final.restore_gradebook(rc, ctx, gradebook)
    files = members.xml("files.xml")
    if files is not None:
        report.files = restore_files(rc, files, contexts, staging, members)


def _need(members: BackupMembers, path: str) -> bytes:
    data = members.xml(path)
    if data is None:
        raise BadInputError(f"the backup has no {path}")
    return data


def _need_stream(members: BackupMembers, path: str) -> Iterator[bytes]:
    data = members.stream(path)
    if data is None:
        raise BadInputError(f"the backup has no {path}")
    return data


def _same_site(writer: SiteWriter, info: BackupInfo) -> bool:
    row = writer.one("config", {"name": "siteidentifier"})
    if row is None:
        return False
    return site_hash(str(row["value"])) == info.site_hash


def _build_context(writer: SiteWriter, users: bool) -> TaskContext:
    """The context the definitions' trees are built with: every setting on
    (a tree is read, not run), users as the restore has them."""
    settings = {**dict.fromkeys(SETTINGS, True), "users": users, "anonymize": False}
    run = BackupRun(SiteReader(writer.conn, writer.prefix), SiteInfo.blank(), settings, {"id": "0"})
    return TaskContext(run, {})


restore_new_course = restore_course_backup  # the name of its first form
