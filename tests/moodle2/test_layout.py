"""Moodle's backup layout as diff --stat groups it (moodle2/layout.py)."""

from __future__ import annotations

import pytest

from coursevault.moodle2.layout import course_part


@pytest.mark.parametrize(
    ("path", "part"),
    [
        ("activities/forum_7/forum.xml", "activities/forum_7"),
        ("sections/section_3/section.xml", "sections/section_3"),
        ("course/blocks/html_4/block_html.xml", "course/blocks/html_4"),
        ("course/course.xml", "course"),
        ("files/ab/ab12", "files (contents)"),
        ("files.xml", "files.xml"),
        ("moodle_backup.xml", "moodle_backup.xml"),
    ],
)
def test_a_member_belongs_to_the_part_of_the_course_it_holds(path: str, part: str) -> None:
    assert course_part(path) == part


def test_file_records_group_by_component_and_area() -> None:
    fields = {"component": "mod_forum", "filearea": "attachment"}
    assert course_part("files.xml", fields.get) == "files.xml mod_forum/attachment"
    assert course_part("files.xml", {}.get) == "files.xml"
    assert course_part("users.xml", fields.get) == "users.xml"  # only files.xml has areas
