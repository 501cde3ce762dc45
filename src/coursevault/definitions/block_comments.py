"""block_comments (``blocks/comments/backup/moodle2/backup_comments_block_task.class.php``):
no members, file areas or encoded configdata of its own.  Its comments live
in the course context (component block_comments, area page_comments) and go
to course/comments.xml with the course task's."""

from __future__ import annotations

from coursevault.structure.registry import Plugin

PLUGIN = Plugin("comments", steps=lambda ctx: [])
