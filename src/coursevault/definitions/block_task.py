"""A block's task: <parent>/blocks/<blockname>_<id>/ (``backup_block_task::build``
in backup/moodle2/backup_block_task.class.php, ``backup_block_instance_structure_step``
in backup_stepslib.php).

Members: block.xml, the block's own members (its plugin's steps:
``define_my_steps``), roles.xml, comments.xml, inforef.xml.  A block with no
definition gets Moodle's ``backup_default_block_task``: the same members
with no file areas and its configdata as stored.

A block plugin says what its task class says through ``Plugin.extra``:
``fileareas`` (``get_fileareas``: areas of ``block_<name>`` annotated in the
block's context) and ``configdata_encoded`` (``get_configdata_encoded_attributes``:
configdata attributes passed through the link encoders, which makes Moodle
unserialize and serialize configdata again).
"""

from __future__ import annotations

import base64
import binascii
import re

from coursevault.definitions.context_members import comments_step, inforef_step, roles_step
from coursevault.moodle2 import phpserial
from coursevault.moodle2.xmlwriter import NULL, Transformer
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import FileArea, Nested, Row, Rows, Table, Up
from coursevault.structure.registry import Plugin, Step

BLOCK_FIELDS = ("blockname", "parentcontextid", "showinsubcontexts", "pagetypepattern",
                "subpagepattern", "defaultregion", "defaultweight", "configdata",
                "timecreated", "timemodified")


def steps(ctx: TaskContext, plugin: Plugin | None = None) -> list[Step]:
    """Nothing when blocks are left out of the backup; else block.xml, the
    plugin's members, roles.xml, comments.xml (if comments) and inforef.xml."""
    if not ctx.run.setting("blocks"):
        return []
    found = [Step("block.xml", build=lambda c: block_structure(c, plugin))]
    if plugin is not None:
        found.extend(plugin.steps(ctx))
    found.append(roles_step())
    if ctx.run.setting("comments"):
        found.append(comments_step())
    found.append(inforef_step())
    return found


def block_structure(ctx: TaskContext, plugin: Plugin | None) -> Nested:
    """block.xml: the block_instances row with its context id, the block
    plugin's version, configdata (re-encoded when the plugin asks), and its
    positions; annotates the plugin's file areas."""
    row = ctx.reader.one("block_instances", {"id": ctx.param("blockid")})
    if row is None:
        raise KeyError(f"block instance {ctx.param('blockid')} vanished")
    extra = plugin.extra if plugin is not None else {}
    block_row: Row = dict(row)
    encoded = tuple(extra.get("configdata_encoded", ()))
    if encoded:
        block_row["configdata"] = encode_configdata(ctx, block_row.get("configdata"), encoded)
    block_row["contextid"] = ctx.param("contextid")
    block_row["version"] = _block_version(ctx, str(row["blockname"]))
    areas = [FileArea("block_" + str(row["blockname"]), area)
             for area in extra.get("fileareas", ())]
    block = Nested(
        "block", attrs=("id", "contextid", "version"), fields=BLOCK_FIELDS,
        source=Rows(lambda _ctx, _parent: [block_row]),
        files=areas,
    )
    position = Nested(
        "block_position", attrs=("id",),
        fields=("contextid", "pagetype", "subpage", "visible", "region", "weight"),
        source=Table("block_positions", {"blockinstanceid": Up("id")}),
    )
    return block.add(Nested("block_positions", children=[position]))


def _block_version(ctx: TaskContext, blockname: str) -> str:
    """``get_config('block_<name>', 'version')``; false (written "") when
    the plugin is not installed."""
    versions: dict[str, str] = ctx.run.memo.setdefault("block_versions", {})
    if blockname not in versions:
        row = ctx.reader.one("config_plugins", {"plugin": "block_" + blockname,
                                                "name": "version"})
        versions[blockname] = str(row["value"]) if row and row["value"] is not None else ""
    return versions[blockname]


def encode_configdata(ctx: TaskContext, configdata: str | None,
                       attributes: tuple[str, ...]) -> str:
    """What ``backup_block_instance_structure_step`` makes of configdata when
    the block has attributes to encode: ``unserialize_object`` (an array of
    the top-level properties, PHP incomplete classes dropped), each listed
    attribute through the content transformer, ``base64(serialize((object)...))``."""
    try:
        raw = base64.b64decode(configdata or "", validate=False)
    except (binascii.Error, ValueError):
        raw = b""
    try:
        value = phpserial.unserialize(raw) if raw else False
    except ValueError:
        value = False  # unserialize() gives false on bad data
    items = _as_array(value)
    wanted = {a.encode("utf-8") for a in attributes}
    out: list[tuple[phpserial.PhpKey, phpserial.PhpValue]] = []
    for key, item in items:
        if isinstance(item, phpserial.PhpObject) and item.name == b"__PHP_Incomplete_Class":
            continue
        if _property_name(key) in wanted:
            item = _transform(ctx, item)
        out.append((_property_key(key), item))
    text = phpserial.serialize(phpserial.PhpObject(b"stdClass", out))
    return base64.b64encode(text).decode("ascii")


def _as_array(value: phpserial.PhpValue) -> list[tuple[phpserial.PhpKey, phpserial.PhpValue]]:
    """PHP's ``(array)`` cast: objects and arrays give their pairs, a scalar
    gives ``[0 => value]``, null gives ``[]``."""
    if isinstance(value, (phpserial.PhpArray, phpserial.PhpObject)):
        return list(value.items)
    if value is None:
        return []
    return [(0, value)]


def _property_name(key: phpserial.PhpKey) -> bytes:
    return str(key).encode("ascii") if isinstance(key, int) else key


def _property_key(key: phpserial.PhpKey) -> phpserial.PhpKey:
    """``(object)`` of an array turns integer keys into property names
    (PHP >= 7.2), which serialize() writes as strings."""
    return _property_name(key)


def _transform(ctx: TaskContext, value: phpserial.PhpValue) -> phpserial.PhpValue:
    """``backup_xml_transformer::process`` on one configdata value: null is
    the null marker, empty and numeric strings and ones under 32 bytes stay,
    others get file.php and link encoding; arrays are processed item by item."""
    if value is None:
        return NULL.encode("ascii")
    if isinstance(value, phpserial.PhpArray):
        return phpserial.PhpArray([(k, _transform(ctx, v)) for k, v in value.items])
    if not isinstance(value, bytes):
        return value
    if value == b"" or len(value) < 32 or _is_numeric(value):
        return value
    return _transformer(ctx)(value.decode("utf-8", "surrogateescape")).encode(
        "utf-8", "surrogateescape")


# PHP 8's numeric strings: optional surrounding whitespace, decimal or exponent form
_PHP_NUMERIC = re.compile(rb"[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ \t\n\r\v\f]*")


def _is_numeric(value: bytes) -> bool:
    """PHP's ``is_numeric`` for a string."""
    return _PHP_NUMERIC.fullmatch(value) is not None


def _transformer(ctx: TaskContext) -> Transformer:
    """The run's content transformer (built once per run)."""
    from coursevault.definitions.run import transformer

    cached: Transformer | None = ctx.run.memo.get("content_transformer")
    if cached is None:
        cached = ctx.run.memo["content_transformer"] = transformer(ctx.run)
    return cached
