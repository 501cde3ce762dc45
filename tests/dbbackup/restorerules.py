"""What Moodle's restore changes in a backup, rule by rule, with the
evidence for each: the data ``restoremask.py`` masks by, and the named
exceptions a restored site's comparison may be given (``Exceptions``).

Every rule is narrow: an element (by its last names) in some members, never
a member or a kind of value wholesale.  The evidence is the site README's
last section, Moodle's restore code, or the two databases themselves
(a value that differs between cv_refsite on PostgreSQL and on MariaDB for
the same record).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from .mbzxml import _Open


@dataclass(frozen=True)
class At:
    """Where a rule applies: elements whose path ends with ``names`` (the
    parent's name, then the element's), in members matching ``member`` (a
    glob); with ``attr``, that attribute of the element instead of its text."""

    member: str
    names: tuple[bytes, ...]
    attr: bytes | None = None

    def matches(self, member: str, stack: list[_Open]) -> bool:
        tail = tuple(o.name for o in stack[-len(self.names) :])
        return tail == self.names and fnmatch.fnmatchcase(member, self.member)


def at(member: str, *names: str, attr: str | None = None) -> At:
    return At(member, tuple(n.encode() for n in names), attr.encode() if attr else None)


# Ids by another name: the site README's forum firstpost/parent, grade
# category path and section sequence; the others found from the real
# differences, each a row id of another table the restore renumbered.
ID_VALUED = (
    at("activities/forum_*/forum.xml", "discussion", "firstpost"),
    at("activities/forum_*/forum.xml", "post", "parent"),
    at("gradebook.xml", "grade_category", "path"),
    at("gradebook.xml", "grade_category", "parent"),
    at("questions.xml", "truefalse", "trueanswer"),  # question_answers ids
    at("questions.xml", "truefalse", "falseanswer"),
    at("questions.xml", "numerical_record", "answer"),
    at("questions.xml", "question", "parent"),  # a question's (cloze parts)
    at("*", "createdby"),  # user ids, as usermodified
    at("*", "modifiedby"),
    at("sections/*/section.xml", "section", "sequence"),
    at("questions.xml", "question_category", "parent"),
    at("activities/feedback_*/feedback.xml", "value", "item"),  # feedback_item
    # found by coursevault's round trip (tests/dbrestore), where the new ids
    # differ from the source's (on the MariaDB site they happened to agree):
    at("activities/feedback_*/feedback.xml", "value", "completed"),  # feedback_completed
    at("activities/assign_*/assign.xml", "submission_file", "submission"),  # assign_submission
    at("activities/assign_*/assign.xml", "submission_onlinetext", "submission"),
    at("activities/assign_*/assign.xml", "feedback_comments", "grade"),  # assign_grades
    at("activities/assign_*/assign.xml", "feedback_files", "grade"),
    at("activities/assign_*/assign.xml", "userflag", "assignment"),  # assign
    at("*grades.xml", "grade_item", "iteminstance"),  # the activity's instance
    at("gradebook.xml", "grade_item", "iteminstance"),
    at("completion.xml", "course_completion_criteria", "moduleinstance"),  # a cm
    at("*", "course"),  # a leaf <course> is always a course id
    at("*", "usermodified"),  # always a user id
)

# Ids when positive, constants when not: a lesson answer jumps to a page
# (its id, which the restore remaps) or to -1 (next page), -40 (end)...
POSITIVE_ID_VALUED = (at("activities/lesson_*/lesson.xml", "answer", "jumpto"),)

# A scale's id negated when negative, a number of points when not: an
# activity graded with a scale (the restore maps only a negative value:
# process_forum, process_data, process_glossary, process_assign,
# process_lti).  The minus stays unmasked, so a scale never passes for points.
NEGATIVE_ID_VALUED = (
    at("activities/forum_*/forum.xml", "forum", "scale"),
    at("activities/data_*/data.xml", "data", "scale"),
    at("activities/glossary_*/glossary.xml", "glossary", "scale"),
    at("activities/assign_*/assign.xml", "assign", "grade"),
    at("activities/lti_*/lti.xml", "lti", "grade"),
)

# Timestamps the restore sets from its clock: the site README's "grade
# items, enrolments, role assignments, files, sections", and what Moodle's
# restore code stamps with time() in rich's groups and grading forms (the
# values on MariaDB are the restore's minute, 1796307853-4).
RESTAMPED = (
    at("*grades.xml", "grade_item", "timecreated"),
    at("*grades.xml", "grade_item", "timemodified"),
    at("gradebook.xml", "grade_item", "timecreated"),
    at("gradebook.xml", "grade_item", "timemodified"),
    at("course/enrolments.xml", "enrolment", "timemodified"),
    at("*roles.xml", "assignment", "timemodified"),
    at("files.xml", "file", "timecreated"),
    at("files.xml", "file", "timemodified"),
    at("sections/*/section.xml", "section", "timemodified"),
    at("groups.xml", "group", "timemodified"),
    at("groups.xml", "group_member", "timeadded"),  # groups_add_member: time()
    at("*grading.xml", "definition", "timecreated"),
    at("*grading.xml", "definition", "timemodified"),
)

# Values Moodle's restore makes anew, on both sides masked whole: a question
# category's stamp (make_unique_id_code() when the restore creates it), and
# what names the site rather than the course (another site, another root).
REGENERATED = (
    at("questions.xml", "question_category", "stamp"),
    at("moodle_backup.xml", "information", "original_wwwroot"),
    at("moodle_backup.xml", "information", "original_site_identifier_hash"),
)


@dataclass(frozen=True)
class RestoredAs:
    """Moodle's value matching ``theirs`` (in full) is what the restore
    wrote as ``ours`` (``#``: an id, masked as ids are): ``why`` is the
    evidence."""

    at: At
    theirs: bytes
    ours: bytes
    why: str


NULL = rb"\$@NULL@\$"
_TOPICS_DEFAULTS = (
    b"".join(
        b"\n    <courseformatoption>\n      <format>topics</format>\n"
        b"      <sectionid>#</sectionid>\n      <name>" + name + b"</name>\n"
        b"      <value>0</value>\n    </courseformatoption>"
        for name in (b"hiddensections", b"coursedisplay")
    )
    + b"\n  "
)
RESTORED_AS = (
    RestoredAs(
        at("course/course.xml", "course", "idnumber"),
        rb".*",
        b"",
        "restore_course_structure_step keeps a course idnumber only on the same "
        "site: rich's RICH-1 is '' in mdl_course on MariaDB",
    ),
    RestoredAs(
        at("*", "grade_item", "idnumber"),
        rb"",
        b"$@NULL@$",
        "site README: grade-item idnumber goes from empty to $@NULL@$",
    ),
    RestoredAs(
        at("course/course.xml", "course", "showcompletionconditions"),
        NULL,
        b"1",
        "mdl_course.showcompletionconditions: NULL on PostgreSQL for courses 8, 9, "
        "11 and 30 (restored from backups older than the field), 1 on MariaDB",
    ),
    RestoredAs(
        at("sections/*/section.xml", "section", "sequence"),
        NULL,
        b"",
        "mdl_course_sections.sequence: 7 NULL on PostgreSQL, none on MariaDB ('')",
    ),
    RestoredAs(
        at("*grades.xml", "grade_grade", "rawscaleid"),
        NULL,
        b"#",
        "mdl_grade_grades.rawscaleid: 154 NULL on PostgreSQL, 43 on MariaDB "
        "(the restore maps it through get_mappingid, which gives 0 for none)",
    ),
    RestoredAs(
        at("files.xml", "file", "userid"),
        NULL,
        b"#",
        "mdl_files.userid: 194 NULL on PostgreSQL, none on MariaDB (the restore "
        "gives each file a user)",
    ),
    RestoredAs(
        at("gradebook.xml", "grade_setting", attr="id"),
        rb"",
        b"#",
        "Moodle writes a missing minmaxtouse setting with an empty id; the "
        "restore stored it (mdl_grade_settings: courses 2, 3, 4, 8 and 12 have "
        "the row on MariaDB only)",
    ),
    RestoredAs(
        at("course/course.xml", "course", "courseformatoptions"),
        rb"\s*",
        _TOPICS_DEFAULTS,
        "courses 8, 9, 11 and 30 have no mdl_course_format_options on PostgreSQL "
        "(restored from old backups); the restore to MariaDB stored the topics "
        "format's defaults, hiddensections 0 and coursedisplay 0",
    ),
    RestoredAs(
        at("activities/forum_*/forum.xml", "discussion", "groupid"),
        rb"-1",
        b"#",
        "mdl_forum_discussions.groupid: -1 (all participants) in 12 rows on "
        "PostgreSQL, 0 in those 12 on MariaDB",
    ),
    RestoredAs(
        at("activities/quiz_*/quiz.xml", "attempt", "timecheckstate"),
        NULL,
        b"0",
        "mdl_quiz_attempts.timecheckstate: NULL in rich's 3 attempts on PostgreSQL, 0 on MariaDB",
    ),
    RestoredAs(
        at("outcomes.xml", "outcome", "usermodified"),
        NULL,
        b"#",
        "mdl_grade_outcomes.usermodified: NULL on PostgreSQL, the restoring admin (2) on MariaDB",
    ),
    RestoredAs(
        at("badges.xml", "badge", "status"),
        rb"\d+",
        b"0",
        "restore_badges_structure_step restores every badge inactive (BADGE_STATUS_INACTIVE)",
    ),
    RestoredAs(
        at("badges.xml", "criterion", "description"),
        NULL,
        b"",
        "process_criterion writes '' where the backup has no description",
    ),
)

# Children whose order in Moodle's backup follows ids or the database's
# heap, so the restore's new ids reorder them: (member glob, parent, child).
UNORDERED = (
    ("files.xml", b"files", b"file"),  # site README: files.xml order differs
    # lesson pages are read ORDER BY prevpageid, an id the restore renumbers
    ("activities/lesson_*/lesson.xml", b"pages", b"page"),
    # read from the ids temp table without ORDER BY: PostgreSQL's heap order
    ("users.xml", b"users", b"user"),
    # read without ORDER BY: Moodle's backup of rich has grade category 38
    # before 37 (PostgreSQL's heap order after 37 was updated); the MariaDB
    # copy reads them in primary-key order
    ("gradebook.xml", b"grade_categories", b"grade_category"),
    # likewise rich's course-level grade items (104, 105, 106, 103, 91 in
    # Moodle's backup); on MariaDB the course item was made with the course,
    # before the restore made the others
    ("gradebook.xml", b"grade_items", b"grade_item"),
)


@dataclass(frozen=True)
class Exceptions:
    """Named exceptions for one course on the restored site, each a fact of
    the oracle, not of our writer (``sitecheck.MARIADB_EXCEPTIONS`` says
    where each comes from):

    ``regenerated``: (component, filearea) whose files the restore remade
    with other contents: in files.xml their contenthash and filesize are
    masked, and the files/ members of Moodle's contents may be missing;
    ``encrypted_by_presence``: encrypted values compared by presence only;
    ``dropped``: (member, parent, child): children of Moodle's member that
    the restore did not recreate, removed from it before comparing;
    ``restored_as``: what the restore made of Moodle's values -- Moodle's
    own restore's by default (``RESTORED_AS``); another restore (coursevault's,
    tests/dbrestore) gives its own;
    ``unordered``: (member glob, parent, child) compared as multisets, as
    ``UNORDERED`` is, for this comparison only.
    """

    regenerated: frozenset[tuple[bytes, bytes]] = frozenset()
    encrypted_by_presence: bool = False
    dropped: tuple[tuple[str, bytes, bytes], ...] = ()
    restored_as: tuple[RestoredAs, ...] = RESTORED_AS
    unordered: tuple[tuple[str, bytes, bytes], ...] = ()


# The site's own users, made by each site's installer, not by the restore:
# their timemodified is that site's install time (mdl_user admin and guest:
# 1796306282 on PostgreSQL, 1796306654 on MariaDB).
SITE_USERS = frozenset({b"admin", b"guest"})
