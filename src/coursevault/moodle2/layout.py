"""Where Moodle's backup layout puts a course's parts: for grouping changes.

A backup keeps each activity and section in a folder of its own
(``activities/forum_7/``, ``sections/section_3/``), each block under
``course/blocks/``, file contents under ``files/`` and the file records of
every area in one ``files.xml``.  Diff's ``--stat`` counts changes per such
part; the rule is the format's knowledge, so it lives here, and diff is
given it rather than knowing Moodle's folders itself.
"""

from __future__ import annotations

from collections.abc import Callable


def course_part(member_path: str, field: Callable[[str], str | None] | None = None) -> str:
    """activities/forum_7, sections/section_3, course/blocks/x, "files
    (contents)", "files.xml COMPONENT/AREA" (``field`` gives a changed
    record's field value by name, None when there is no record), or the
    member's top-level name."""
    parts = member_path.split("/")
    if parts[0] in ("activities", "sections") and len(parts) > 1:
        return "/".join(parts[:2])
    if parts[0] == "course" and len(parts) > 2 and parts[1] == "blocks":
        return "/".join(parts[:3])
    if parts[0] == "files" and len(parts) > 1:
        return "files (contents)"
    if field is not None and member_path == "files.xml":
        area = field("filearea")
        comp = field("component")
        if area or comp:
            return f"files.xml {comp}/{area}"
    return parts[0] if parts[0] != "course" else "course"
