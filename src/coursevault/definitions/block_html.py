"""block_html (``blocks/html/backup/moodle2/backup_html_block_task.class.php``):
no members of its own; its ``content`` file area is annotated, and the
``text`` attribute of its configdata passes the link encoders."""

from __future__ import annotations

from coursevault.structure.registry import Plugin

PLUGIN = Plugin(
    "html",
    steps=lambda ctx: [],
    extra={"fileareas": ("content",), "configdata_encoded": ("text",)},
)
