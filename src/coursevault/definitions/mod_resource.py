"""mod_resource (``mod/resource/backup/moodle2/backup_resource_stepslib.php``):
one row, no user data; the files of its intro and content areas."""

from __future__ import annotations

import re

from coursevault.definitions.common import activity_structure
from coursevault.definitions.preg import preg_replace, quoted_root
from coursevault.moodledb.site import Row
from coursevault.structure.context import BackupRun, TaskContext
from coursevault.structure.elements import Nested, Param, Table
from coursevault.structure.registry import LinkContext, Plugin, Step


def resource_structure(ctx: TaskContext) -> Nested:
    """``backup_resource_activity_structure_step::define_structure``."""
    resource = Nested(
        "resource",
        attrs=("id",),
        fields=(
            "name", "intro", "introformat", "tobemigrated",
            "legacyfiles", "legacyfileslast", "display",
            "displayoptions", "filterfiles", "revision", "timemodified",
        ),
        source=Table("resource", {"id": Param("activityid")}),
    )
    resource.annotate_files("mod_resource", "intro", None)
    resource.annotate_files("mod_resource", "content", None)
    return activity_structure(ctx, resource)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_resource_activity_task::encode_content_links``.

    Links to resources that Moodle 2.0's upgrade turned into other modules
    (rows of ``resource_old``) are encoded as links to the new module, by
    course module id (``view.php?id=``) or by old resource id
    (``view.php?r=``); the plain rule applies when that table is empty."""
    base = quoted_root(link)
    content = preg_replace(rf"({base}\/mod\/resource\/index.php\?id\=)([0-9]+)",
                           "$@RESOURCEINDEX*$2@$", content)
    by_cmid = rf"({base}\/mod\/resource\/view.php\?id\=)([0-9]+)"
    if link.run is None or not _resource_old_exists(link.run):
        return preg_replace(by_cmid, "$@RESOURCEVIEWBYID*$2@$", content)
    return _encode_migrated(content, link.run, by_cmid,
                            rf"({base}\/mod\/resource\/view.php\?r\=)([0-9]+)")


def _resource_old_exists(run: BackupRun) -> bool:
    """``$DB->record_exists('resource_old', [])``, once per run as PHP
    keeps it in a static for the process."""
    if "resource_old_exists" not in run.memo:
        run.memo["resource_old_exists"] = any(
            True for _ in run.reader.sql("SELECT id FROM {resource_old}"))
    return bool(run.memo["resource_old_exists"])


def _encode_migrated(content: str, run: BackupRun, by_cmid: str, by_oldid: str) -> str:
    """The ``resource_old`` branch, with PHP's ``str_replace`` of each whole
    match (which also rewrites longer links that start with it)."""
    matches = [(m.group(0), m.group(2)) for m in re.finditer(by_cmid, content)]
    if matches:
        old = _resource_old(run, "cmid", [cmid for _, cmid in matches])
        for whole, cmid in matches:
            rec = old.get(cmid)
            module = str(rec["newmodule"]).upper() if rec is not None else "RESOURCE"
            content = content.replace(whole, f"$@{module}VIEWBYID*{cmid}@$")
    matches = [(m.group(0), m.group(2)) for m in re.finditer(by_oldid, content)]
    if not matches:
        return content
    old = _resource_old(run, "oldid", [oldid for _, oldid in matches])
    for whole, oldid in matches:
        rec = old.get(oldid)
        if rec is not None:
            content = content.replace(
                whole, f"$@{str(rec['newmodule']).upper()}VIEWBYID*{rec['cmid']}@$")
    return content


def _resource_old(run: BackupRun, key: str, values: list[str]) -> dict[str, Row]:
    """``get_records_select('resource_old', "$key IN (...)")``: keyed by
    ``key`` as PHP keys the records (the last of duplicates wins)."""
    return {str(r[key]): r for r in run.reader.rows("resource_old", {key: values})}


PLUGIN = Plugin(
    "resource",
    steps=lambda ctx: [Step("resource.xml", build=resource_structure)],
    encode_links=encode_links,
)
