"""Records into tables: the generic half of restoring a definition.

Moodle's restore keeps one map of old id -> new id per item type
(``backup_ids_temp``) and consults it for every reference (here
:class:`~coursevault.structure.idmap.IdMap`, kept compact).  Here the item
type of a row's own id is its table's name, so a definition's :class:`Table`
source names it without a second vocabulary; annotations (``user``,
``group``...) name the table they refer to through ``ITEM_TABLES``.

:func:`insert_records` writes each record of a tree whose element reads a
table: its values, minus the old id, with

- columns bound to an ancestor (``Up``) set to that ancestor's new id,
- columns bound to the task (``Param``) set to the restore's value of it,
- annotated columns and declared references (``refs``) mapped through the
  id map -- or, when the target is not restored yet (a discussion's first
  post), left for :meth:`RestoreContext.resolve_deferred` at the end.

A reference to an item that is not in the backup at all (a user left out,
a scale of another site) is mapped as Moodle maps it: to 0 (``nullable``
columns to NULL), and counted in ``unmapped`` so the run can say so.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from coursevault.moodledb.sitewriter import SiteWriter
from coursevault.structure.elements import In, Nested, Param, Sql, Table, Up
from coursevault.structure.idmap import IdMap as IdMap  # where the restore steps import it
from coursevault.structure.reverse import Record

# annotation item -> table whose ids it names
ITEM_TABLES = {
    "user": "user",
    "group": "groups",
    "grouping": "groupings",
    "role": "role",
    "scale": "scale",
    "outcome": "grade_outcomes",
    "grade_item": "grade_items",
    "question_category": "question_categories",
    "question": "question",
    "course_modules": "course_modules",
    "grade_category": "grade_categories",
    "scalefinal": "scale",
    "outcomefinal": "grade_outcomes",
    "userfinal": "user",
    "criterion": "badge_criteria",
}

# columns that always hold the course's id in Moodle's tables
COURSE_COLUMNS = ("course", "courseid")

Hook = Callable[["RestoreContext", Record, dict[str, Any]], bool]
Writer = Callable[["RestoreContext", Record], None]


@dataclass
class Deferred:
    table: str
    row_id: int
    column: str
    target: str
    old: str


@dataclass
class RestoreContext:
    """What every restore step shares: the writer, the id map, the task's
    values (``courseid``, ``contextid``, ``activityid``... -- new ids) and
    what the run reports."""

    writer: SiteWriter
    ids: IdMap
    params: dict[str, Any] = field(default_factory=dict)
    users: bool = True
    deferred: list[Deferred] = field(default_factory=list)
    unmapped: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    # what later steps finish (section sequences...), by the steps' own keys
    later: dict[str, list[Any]] = field(default_factory=dict)
    # (component, filearea) -> table whose new ids the files' itemids take
    # (None: itemids kept), from the definitions' file annotations
    file_areas: dict[tuple[str, str], str | None] = field(default_factory=dict)
    # hooks that run before a step's own (a merge matching existing rows)
    overrides: dict[str, Hook] = field(default_factory=dict)
    # seconds added to every date column (is_date) that is not 0
    date_offset: int = 0
    is_date: Callable[[str, str], bool] | None = None
    # what the run read of the site once rather than per activity (module ids)
    known: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> Any:
        try:
            return self.params[name]
        except KeyError:
            raise KeyError(f"restore has no value for {name!r}") from None

    def with_params(self, **values: Any) -> RestoreContext:
        """A context for one task: the same map and writer, its own values."""
        return RestoreContext(
            self.writer,
            self.ids,
            {**self.params, **values},
            self.users,
            self.deferred,
            self.unmapped,
            self.warnings,
            self.later,
            self.file_areas,
            self.overrides,
            self.date_offset,
            self.is_date,
            self.known,
        )

    def map_ref(self, table: str, old: Any, *, column: str) -> int | None:
        """``old``'s new id in ``table``; None for NULL/0, and 0 (counted)
        for an id the restore does not hold."""
        if old is None:
            return None
        text = str(old).strip()
        if table == "scale" and text.startswith("-") and text[1:].isdigit():
            # a rating's scaleid: minus the scale's id (as annotations store it)
            scale = self.map_ref(table, text[1:], column=column)
            return -scale if scale else scale
        if str(old).strip() in ("", "0") or str(old).startswith("-"):
            return 0 if str(old).strip() == "" else int(old)  # 0, -1: "none", "all"
        new = self.ids.get(table, old)
        if new is None:
            self.unmapped[f"{table} via {column}"] += 1
            return 0
        return new

    def resolve_deferred(self) -> None:
        """Fill in references to rows restored after the row that holds them."""
        for d in self.deferred:
            new = self.ids.get(d.target, d.old)
            if new is None:
                self.unmapped[f"{d.target} via {d.table}.{d.column}"] += 1
                new = 0
            self.writer.update(d.table, d.row_id, {d.column: new})
        self.deferred.clear()


def insert_records(
    rc: RestoreContext,
    records: Iterable[Record],
    *,
    refs: Mapping[tuple[str, str], str] = {},
    hooks: Mapping[str, Hook] = {},
    skip: Iterable[str] = (),
    tables: Mapping[str, str] = {},
    writers: Mapping[str, Writer] = {},
) -> Counter[str]:
    """Insert every record whose element reads a table; rows per table.

    ``refs`` maps (table, column) to the table its value is an id of;
    ``hooks[element]`` may adjust a row (return False to leave it out);
    elements in ``skip`` (and their user-data elements when the restore
    excludes users) are not written; ``tables`` names the table of elements
    whose source is SQL or Python (``grade_item``), which bind nothing;
    ``writers[element]`` writes an element that is not one row of one
    table (a tag: a ``tag`` row found or made, and a ``tag_instance``).
    """
    skipped = set(skip)
    written: Counter[str] = Counter()
    walked = object()  # this call's mark of a record whose ancestors are not skipped
    for rec in records:
        node = rec.node
        parent = rec.parent
        if parent is not None and parent.extra.get(_WALKED) is walked:
            # its parent was checked in this call: only its own flags are new
            out = (
                rec.name in skipped
                or bool(parent.extra.get("skipped"))
                or bool(rec.extra.get("skipped"))
                or (node.userinfo and not rc.users)
            )
        else:
            out = _skipped(rec, skipped, rc.users)
        if out:
            rec.extra["skipped"] = True
            continue
        rec.extra[_WALKED] = walked
        write = writers.get(node.name)
        if write is not None:
            write(rc, rec)
            continue
        source = node.source
        if isinstance(source, Sql):
            source = sql_table(source)
        if not isinstance(source, Table):
            if node.name not in tables:
                continue
            source = Table(tables[node.name])
        table = source.table
        _note_files(rc, rec, table)
        row: dict[str, Any] = dict(rec.values)
        row.pop("id", None)
        for name in node.encrypted & row.keys():
            row[name] = decrypt(rc, row[name])
        for name, column in aliases(node).items():
            if name in row:
                row[column] = row.pop(name)
        for column in COURSE_COLUMNS:
            if column in rc.writer.columns(table) and "courseid" in rc.params:
                row[column] = rc.params["courseid"]
        deferred: list[tuple[str, str, str]] = []
        bound_now = _bind(rc, rec, source, row)
        for item, column in node.annotations:
            if column in row and column not in bound_now:  # a bound column holds a new id
                if item == "scale" and not is_scale_reference(row[column]):
                    continue  # a positive grade or rating scale is points: kept as it is
                row[column] = rc.map_ref(ITEM_TABLES.get(item, item), row[column], column=column)
        # bound and annotated columns hold new ids already: a ref must not map them again
        bound = set(source.where) | {column for _item, column in node.annotations}
        for column in list(row):
            target = refs.get((table, column))
            if target is None or column in bound:
                continue
            old = row[column]
            if old is None or str(old).strip() in ("", "0") or str(old).startswith("-"):
                continue  # none, or -1 "all participants"
            new = rc.ids.get(target, old)
            if new is None:
                deferred.append((column, target, str(old)))
                row[column] = 0
            else:
                row[column] = new if new is not None else old
        if rc.date_offset and rc.is_date is not None:
            shift_dates(rc, table, row)
        hook = _chain(rc.overrides.get(node.name), hooks.get(node.name))
        if hook is not None and not hook(rc, rec, row):
            if rec.new_id is not None and rec.old_id() is not None:  # matched, not written
                rc.ids.set(table, rec.old_id(), rec.new_id)
            continue
        rec.new_id = rc.writer.insert(table, row)
        written[table] += 1
        note_markers(rc, table, rec.new_id, row)
        if rec.old_id() is not None:
            rc.ids.set(table, rec.old_id(), rec.new_id)
        own = source.where.get("id")
        if isinstance(own, Param):  # the activity's own row: its children bind to it
            rc.params[own.name] = rec.new_id
        elif isinstance(own, Up) and own.field != "id":
            _named_by_ancestor(rc, rec, own, rec.new_id)
        for column, target, old in deferred:
            rc.deferred.append(Deferred(table, rec.new_id, column, target, old))
    return written


_BACKUP_KEY = "backup_encryptkey"
_HMAC_BYTES, _IV_BYTES = 32, 16


def decrypt(rc: RestoreContext, value: Any) -> str | None:
    """An ``encrypted_final_element``'s plaintext, as Moodle's restore
    (``restore_structure_step::decrypt``) reads it with the site's backup
    key: base64(HMAC-SHA256 of IV and ciphertext, IV, AES-256-CBC); None
    -- the column's default -- when the site has no key or the HMAC does
    not match (another site's backup).  The encrypted text itself was
    written: an LTI tool's resource key and password were base64 no tool
    accepts."""
    import base64
    import binascii
    import hashlib
    import hmac

    if value is None:
        return None
    if _BACKUP_KEY not in rc.known:
        row = rc.writer.one("config_plugins", {"plugin": "backup", "name": _BACKUP_KEY})
        try:
            rc.known[_BACKUP_KEY] = base64.b64decode(str(row["value"])) if row else None
        except (binascii.Error, ValueError):
            rc.known[_BACKUP_KEY] = None
    key = rc.known[_BACKUP_KEY]
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return None
    body = raw[_HMAC_BYTES:]
    if (not key or len(key) != 32 or len(body) < _IV_BYTES + 16 or len(body) % 16
            or not hmac.compare_digest(raw[:_HMAC_BYTES],
                                       hmac.new(key, body, hashlib.sha256).digest())):
        return None
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    dec = Cipher(algorithms.AES(key), modes.CBC(body[:_IV_BYTES])).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = unpadder.update(dec.update(body[_IV_BYTES:]) + dec.finalize())
        return (plain + unpadder.finalize()).decode("utf-8")
    except ValueError:  # bad padding, or not UTF-8
        return None


def is_scale_reference(value: Any) -> bool:
    """Whether an activity's ``scale``/``grade`` or a rating's ``scaleid``
    names a scale: minus its id.  A positive value is a number of points
    and 0 none; Moodle's restore maps only a negative one
    (``process_forum``, ``process_forum_rating``, ``process_glossary``...)."""
    text = str(value).strip() if value is not None else ""
    return text.startswith("-") and text[1:].isdigit()


def note_markers(rc: RestoreContext, table: str, row_id: int, row: dict[str, Any]) -> None:
    """Texts holding a backup's link markers (``$@...@$``), for the
    after-restore pass to decode once every id is known."""
    for column, value in row.items():
        if isinstance(value, str) and "$@" in value:
            rc.later.setdefault("links", []).append((table, row_id, column, value))


def shift_dates(rc: RestoreContext, table: str, row: dict[str, Any]) -> None:
    """Add the restore's date offset to the row's non-zero date columns."""
    assert rc.is_date is not None
    for column, value in row.items():
        if value is None or not rc.is_date(table, column):
            continue
        text = str(value).strip()
        if text.lstrip("-").isdigit() and int(text) != 0:
            row[column] = int(text) + rc.date_offset


def _chain(first: Hook | None, then: Hook | None) -> Hook | None:
    if first is None or then is None:
        return first or then

    def both(rc: RestoreContext, rec: Record, row: dict[str, Any]) -> bool:
        return first(rc, rec, row) and then(rc, rec, row)

    return both


def _named_by_ancestor(rc: RestoreContext, rec: Record, own: Up, new_id: int) -> None:
    """A row an ancestor's column names (a version's ``questionid`` is the
    question below it): written first with a placeholder, that column is
    set once the row has its id."""
    walk = rec.parent
    while walk is not None:
        source = walk.node.source
        if isinstance(source, Sql):
            source = sql_table(source)
        if (
            walk.new_id is not None
            and isinstance(source, Table)
            and (own.element is None or walk.name == own.element)
        ):
            rc.writer.update(source.table, walk.new_id, {own.field: new_id})
            return
        walk = walk.parent


class _Probe(dict[str, Any]):
    """A row that remembers which column a computed field reads."""

    read: list[str]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.append(key)
        return _PROBED

    def __getitem__(self, key: str) -> Any:
        self.read.append(key)
        return _PROBED

    def __missing__(self, key: str) -> Any:
        return self[key]


_PROBED = object()


def aliases(node: Nested) -> dict[str, str]:
    """Fields the definition writes under another name than their column
    (``set_source_alias``: a rating's ``value`` is its ``rating``), found by
    running each computed field on a probe row: a field that returns one
    column's value as it is is that column, read back."""
    found: dict[str, str] | None = getattr(node, "_restore_aliases", None)
    if found is None:
        found = {}
        for name, fn in node.compute.items():
            probe = _Probe()
            probe.read = []
            try:
                result = fn(probe, None)  # type: ignore[arg-type]
            except Exception:  # a real computation, not an alias
                continue
            if result is _PROBED and len(probe.read) == 1 and probe.read[0] != name:
                found[name] = probe.read[0]
        setattr(node, "_restore_aliases", found)  # noqa: B010 -- a cache on the node
    return found


_ONE_TABLE = re.compile(
    r"^\s*SELECT\s+(?:(\w+)\.)?\*\s+FROM\s+\{(\w+)\}(?:\s+(?!WHERE\b|JOIN\b)(\w+))?\s+"
    r"(?:WHERE|JOIN)\s",
    re.IGNORECASE,
)
_EQ_PARAM = re.compile(r"(?:(\w+)\.)?(\w+)\s*=\s*\?")
# a column list of one table: SELECT id, dimensionid, grade FROM {workshop_grades} WHERE
_COLUMNS_TABLE = re.compile(
    r"^\s*SELECT\s+\w+(?:\s*,\s*\w+)*\s+FROM\s+\{(\w+)\}\s+WHERE\s", re.IGNORECASE
)
_EQ_TEXT = re.compile(r"(?:\w+\.)?(\w+)\s*=\s*'([^']*)'")


def sql_table(source: Sql) -> Table | None:
    """The :class:`Table` whose rows an SQL source selects, with its ``col =
    ?`` bindings in order: a one-table source (``SELECT * FROM
    {workshop_submissions} WHERE workshopid = ? AND example = 0``), or one
    selecting ``x.*`` of its FROM table whose joins only filter and whose
    bindings are all on ``x`` (``SELECT rf.* FROM {gradingform_rubric_fillings}
    rf JOIN ... WHERE rf.instanceid = ?``), or a column list of one table
    (``SELECT id, grade FROM {workshop_grades} WHERE strategy = 'rubric' AND
    assessmentid = ?``: the text literal is bound too); None for anything
    else (expressions, bindings on a joined table, keyed sources)."""
    if hasattr(source, "_restore_table"):
        cached: Table | None = source._restore_table
        return cached
    table = None
    m = _ONE_TABLE.match(source.sql)
    joined = " JOIN " in source.sql.upper()
    own = m.group(3) if m else None
    name = m.group(2) if m else None
    if m is None and not joined:
        columns = _COLUMNS_TABLE.match(source.sql)
        name = columns.group(1) if columns else None
    if name and source.key is None and (not joined or (m and own and m.group(1) == own)):
        found = _EQ_PARAM.findall(source.sql)
        params = list(source.params)
        on_own = all(alias == own for alias, _c in found) if joined else True
        if on_own and len(found) == len(params) and not any(isinstance(p, In) for p in params):
            where: dict[str, Any] = {
                c: p for (_a, c), p in zip(found, params, strict=True) if isinstance(p, Up | Param)
            }
            texts = _EQ_TEXT.findall(source.sql)
            if (
                not joined
                and " OR " not in source.sql.upper()
                and len({c for c, _v in texts}) == len(texts)
            ):
                where.update(texts)  # a text literal all the rows were chosen by is theirs
            table = Table(name, where)
    setattr(source, "_restore_table", table)  # noqa: B010 -- a cache on the source
    return table


def _note_files(rc: RestoreContext, rec: Record, table: str) -> None:
    """Which table's ids a file area's itemids are: the element's own
    (``itemid_field`` "id") or the ancestor's its itemid column is bound to."""
    for area in rec.node.files:
        key = (area.component, area.filearea)
        if key in rc.file_areas:
            continue
        target: str | None = None
        if area.itemid_field == "id":
            target = table
        elif area.itemid_field is not None:
            target = _bound_table(rec, area.itemid_field)
        rc.file_areas[key] = target


def _bound_table(rec: Record, column: str) -> str | None:
    if not isinstance(rec.node.source, Table):
        return None
    bound = rec.node.source.where.get(column)
    if not isinstance(bound, Up) or bound.field != "id":
        return None
    try:
        parent = rec.up(bound.field, bound.element)
    except KeyError:
        return None
    return parent.node.source.table if isinstance(parent.node.source, Table) else None


# Record.extra key of insert_records' mark (see there)
_WALKED = "restore_engine.walked"


def _skipped(rec: Record, skipped: set[str], users: bool) -> bool:
    walk: Record | None = rec
    while walk is not None:
        if walk.name in skipped or walk.extra.get("skipped"):
            return True
        if walk.node.userinfo and not users:
            return True
        walk = walk.parent
    return False


def _bind(rc: RestoreContext, rec: Record, source: Table, row: dict[str, Any]) -> set[str]:
    """Columns the definition binds to an ancestor's new id or to the task;
    those set to a new id."""
    news: set[str] = set()
    for column, value in source.where.items():
        if column == "id":
            continue
        if isinstance(value, Up):
            try:
                parent = rec.up(value.field, value.element)
            except KeyError:
                continue
            if value.field == "id":
                row[column] = parent.new_id
                news.add(column)
            else:
                row[column] = parent.values.get(value.field)
        elif isinstance(value, Param):
            if value.name in rc.params:
                row[column] = rc.params[value.name]
                news.add(column)
        elif value is not None:
            row[column] = value
    return news
