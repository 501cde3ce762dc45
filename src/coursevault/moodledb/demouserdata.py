"""What users did in a demo course: posts, submissions, grades, entries, answers.

Shared by the first build and by churn (``demochurn.py``), so a night's new
post or grade is written exactly as the first night's: the same template
rows, the same links (a discussion's first post, a grade's grade_grades row
and feedback comment).
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import TYPE_CHECKING

from coursevault.moodledb.democontent import paragraphs, sentence, words
from coursevault.moodledb.rowwriter import RowWriter
from coursevault.moodledb.sitedata import SiteData

if TYPE_CHECKING:
    from coursevault.moodledb.demosite import DemoSize

GRADER = 2  # the admin grades, as in the reference site's generated courses
SUBMITTED_SHARE = 0.6
GRADED_SHARE = 0.5
ANSWERED_SHARE = 0.7


class UserDataBuilder:
    """Writes users' work; ``time`` is when it happens (each write a few seconds later)."""

    def __init__(self, writer: RowWriter, data: SiteData, rng: random.Random, time: int,
                 until: int | None = None) -> None:
        self.writer, self.data, self.rng = writer, data, rng
        self.time = time
        self.until = until  # the clock stops there (a night that ends now, not later)

    def tick(self) -> int:
        self.time += self.rng.randint(1, 20)
        if self.until is not None and self.time > self.until:
            self.time = self.until
        return self.time

    def forum_discussions(self, course: int, forum: int, users: list[int], size: DemoSize) -> None:
        """tool_generator's discussions: "Discussion N", its first post and replies."""
        for d in range(1, size.discussions + 1):
            author = users[(2 * d - 2) % len(users)]
            discussion = self.writer.next_id("forum_discussions")
            first = self.add_post(
                discussion, 0, author, f"Discussion {d}", f"<p>Message for discussion {d}</p>"
            )
            last = author
            for r in range(1, size.posts_per_discussion):
                last = users[(2 * d - 2 + r) % len(users)]
                self.add_post(
                    discussion, first, last, f"Re: Discussion {d}", f"<p>{sentence(self.rng)}</p>"
                )
            self.writer.add(
                "forum_discussions",
                self.data.row(
                    "forum_discussions",
                    id=discussion,
                    course=course,
                    forum=forum,
                    name=f"Discussion {d}",
                    firstpost=first,
                    userid=author,
                    timemodified=self.time,
                    usermodified=last,
                ),
            )

    def add_post(self, discussion: int, parent: int, user: int, subject: str, message: str) -> int:
        when = self.tick()
        text = message.replace("<p>", "").replace("</p>", "")
        return self.writer.add(
            "forum_posts",
            self.data.row(
                "forum_posts",
                id=None,
                discussion=discussion,
                parent=parent,
                userid=user,
                created=when,
                modified=when,
                subject=subject,
                message=message,
                wordcount=len(text.split()),
                charcount=len(text),
            ),
        )

    def assign_work(self, assign: int, grade_item: int, users: list[int]) -> None:
        """Online-text submissions from some students; half of them graded."""
        for user in users:
            if self.rng.random() < SUBMITTED_SHARE:
                self.submit(assign, user)
                if self.rng.random() < GRADED_SHARE:
                    self.grade(assign, grade_item, user)

    def submit(self, assign: int, user: int) -> int:
        when = self.tick()
        submission = self.writer.add(
            "assign_submission",
            self.data.row(
                "assign_submission",
                id=None,
                assignment=assign,
                userid=user,
                timecreated=when,
                timemodified=when,
            ),
        )
        self.writer.add(
            "assignsubmission_onlinetext",
            self.data.row(
                "assignsubmission_onlinetext",
                id=None,
                assignment=assign,
                submission=submission,
                onlinetext=paragraphs(self.rng, 1),
            ),
        )
        return submission

    def grade(self, assign: int, grade_item: int, user: int) -> int:
        """The assignment's grade, its feedback comment and the gradebook's copy."""
        when = self.tick()
        value = Decimal(self.rng.randint(30, 100)).quantize(Decimal("0.00001"))
        feedback = f"<p>{sentence(self.rng, 8)}</p>"
        grade = self.writer.add(
            "assign_grades",
            self.data.row(
                "assign_grades",
                id=None,
                assignment=assign,
                userid=user,
                grader=GRADER,
                grade=value,
                timecreated=when,
                timemodified=when,
            ),
        )
        self.writer.add(
            "assignfeedback_comments",
            self.data.row(
                "assignfeedback_comments",
                id=None,
                assignment=assign,
                grade=grade,
                commenttext=feedback,
            ),
        )
        self.writer.add(
            "grade_grades",
            self.data.row(
                "grade_grades",
                id=None,
                itemid=grade_item,
                userid=user,
                rawgrade=value,
                finalgrade=value,
                usermodified=GRADER,
                feedback=feedback,
                timecreated=None,
                timemodified=when,
                aggregationweight=None,
                aggregationstatus="unknown",
            ),
        )
        return grade

    def glossary_entries(self, glossary: int, users: list[int], count: int) -> None:
        for i in range(count):
            when = self.tick()
            concept = words(self.rng, 1).capitalize() + f" {i}"
            self.writer.add(
                "glossary_entries",
                self.data.row(
                    "glossary_entries",
                    id=None,
                    glossaryid=glossary,
                    userid=users[i % len(users)],
                    concept=concept,
                    definition=f"<p>{sentence(self.rng)}</p>",
                    teacherentry=0,
                    timecreated=when,
                    timemodified=when,
                ),
            )

    def choice_answers(self, choice: int, users: list[int], options: int) -> None:
        option_ids = [
            self.writer.add(
                "choice_options",
                self.data.row(
                    "choice_options",
                    id=None,
                    choiceid=choice,
                    text=f"Option {words(self.rng, 1)} {i}",
                    timemodified=self.time,
                ),
            )
            for i in range(1, options + 1)
        ]
        for user in users:
            if self.rng.random() < ANSWERED_SHARE:
                self.writer.add(
                    "choice_answers",
                    self.data.row(
                        "choice_answers",
                        id=None,
                        choiceid=choice,
                        userid=user,
                        optionid=self.rng.choice(option_ids),
                        timemodified=self.tick(),
                    ),
                )
