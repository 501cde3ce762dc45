"""The core question types Moodle 4.5 ships without a backup class:
qtype_description (question/type/description has no backup/ directory),
qtype_random (only restore_qtype_random_plugin, for pre-4.3 backups; 4.3
turned random questions into question set references) and
qtype_missingtype (what questions of an uninstalled type are shown as).  Their questions
are written with the core fields only, as rich's and Scratch's description
questions are in Moodle's backups; registering them says so, rather than
leaving them looking forgotten."""

from __future__ import annotations

from coursevault.definitions.qtype_parts import qtype_plugin

DESCRIPTION = qtype_plugin("description", None)
MISSINGTYPE = qtype_plugin("missingtype", None)
RANDOM = qtype_plugin("random", None)
