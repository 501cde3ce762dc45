"""Which columns hold dates, for ``restore --start-date`` (``apply_date_offset``).

Moodle's restore steps shift each date field of what they restore by the
difference between the new course start date and the backup's
(``restore_structure_step::apply_date_offset``), leaving 0 ("no date") as
0.  Moodle names its date columns consistently, so the rule is by name:
``time...`` (but durations and zones: ``timelimit``, ``timezone``,
``timeduration``, ``timespent``, ``timetaken``...), ``...date``,
``...time`` and a few names of their own (a lesson's ``available`` and
``deadline``, a post's ``created`` and ``modified``, a rating period's
``assesstimestart``).  A plugin whose date column escapes the rule adds it
to ``EXTRA``.
"""

from __future__ import annotations

import re

_DATE = re.compile(r"^time|date$|time$")
NOT_DATES = frozenset({
    "timelimit", "timezone", "timeduration", "timespent", "timetaken", "timeformat",
    "timemodifiedoffline_unused", "completiontimespent", "maxtime", "mintime",
    "showtime", "usetime", "graceperiod", "overduehandling", "timeaccess_unused",
    "timesort",
    "allowupdate",  # a choice's flag, not an update date
    "timewindow",  # a monitor rule's duration
})
EXTRA = frozenset({
    ("lesson", "available"), ("lesson", "deadline"), ("forum_posts", "created"),
    ("forum_posts", "modified"), ("forum", "assesstimestart"),
    ("forum", "assesstimefinish"), ("glossary", "assesstimestart"),
    ("glossary", "assesstimefinish"), ("data", "assesstimestart"),
    ("data", "assesstimefinish"), ("course_modules", "completionexpected"),
    ("course_modules", "added"), ("lesson_overrides", "available"),
    ("lesson_overrides", "deadline"), ("badge_endorsement", "dateissued"),
    ("badge_manual_award", "datemet"),
})


def is_date(table: str, column: str) -> bool:
    if (table, column) in EXTRA:
        return True
    return column not in NOT_DATES and bool(_DATE.search(column))
