"""Blocks of a course or an activity, restored (``restore_block_task`` and
``restore_block_instance_structure_step`` of backup/moodle2/).

A backup lists no blocks in moodle_backup.xml: Moodle's restore finds them
as folders ``<parent>/blocks/<name>_<id>/``, and so does this module.  Each
becomes a ``block_instances`` row under its restored parent context (the
course's or the activity's) with its own block context (path and depth),
its positions in contexts the restore knows, its file areas (the block
plugin's ``fileareas``, item ids kept), and its roles.xml and comments.xml
in the new block context.  configdata is kept as the backup wrote it: the
backup already unserialised and serialised it again for the attributes the
plugin encodes (block_task.encode_configdata), which is what Moodle's
restore does to it.

A block of a plugin this site lacks is left out with a warning, as is a
block whose parent context is not restored.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from coursevault.definitions import restore_common, restore_final
from coursevault.definitions.block_task import BLOCK_FIELDS
from coursevault.definitions.restore_course import CONTEXT_BLOCK, create_context, finals
from coursevault.structure import registry
from coursevault.structure.context import TaskContext
from coursevault.structure.restore_engine import RestoreContext

Members = Callable[[str], bytes | None]
Folders = Callable[[str], list[str]]


def restore_blocks(rc: RestoreContext, ctx: TaskContext, parent: str, members: Members,
                   folders: Folders, contexts: dict[str, int]) -> int:
    """Every block folder under ``parent``/blocks; how many were restored."""
    restored = 0
    for folder in folders(f"{parent}/blocks"):
        directory = f"{parent}/blocks/{folder}"
        data = members(f"{directory}/block.xml")
        if data is None:
            continue
        if restore_block(rc, ctx, directory, data, members, contexts):
            restored += 1
    return restored


def restore_block(rc: RestoreContext, ctx: TaskContext, directory: str, data: bytes,
                  members: Members, contexts: dict[str, int]) -> bool:
    """One block folder; False (with a warning) when it is left out."""
    root = ET.fromstring(data)
    values = finals(root)
    name = str(values.get("blockname") or "")
    if rc.writer.one("block", {"name": name}) is None:
        rc.warnings.append(f"{directory}: block {name!r} is not installed in this site: "
                           "left out")
        return False
    parentctx = contexts.get(str(values.get("parentcontextid")))
    if parentctx is None:
        rc.warnings.append(f"{directory}: its parent context is not restored: left out")
        return False
    row: dict[str, Any] = {field: values.get(field) for field in BLOCK_FIELDS}
    row["parentcontextid"] = parentctx
    blockid = rc.writer.insert("block_instances", row)
    rc.ids.set("block_instances", root.get("id"), blockid)
    blockctx = create_context(rc, CONTEXT_BLOCK, blockid, parentctx)
    contexts[str(root.get("contextid"))] = blockctx
    for el in root.iterfind("block_positions/block_position"):
        position = finals(el)
        where = contexts.get(str(position.pop("contextid", None)))
        if where is None:
            rc.unmapped["context via block_positions.contextid"] += 1
            continue
        position.pop("id", None)
        rc.writer.insert("block_positions", {**position, "blockinstanceid": blockid,
                                             "contextid": where})
    plugin = registry.blocks().get(name)
    for area in (plugin.extra.get("fileareas", ()) if plugin is not None else ()):
        rc.file_areas.setdefault((f"block_{name}", area), None)
    task = rc.with_params(contextid=blockctx, blockid=blockid)
    restore_common.each_member(members, directory, [
        ("roles.xml", lambda path, data: restore_final.restore_roles(task, ctx, path, data)),
        ("comments.xml", lambda path, data: restore_common.restore_comments(
            task, ctx, path, data)),
    ])
    return True
