"""Running a tree of :class:`Nested` elements into one member's bytes.

Two passes.  ``expand`` fetches rows level by level -- all options of all
choices in one query, all posts of all discussions in one (batched) query --
so a course costs a query per element and batch, not per row.  ``write``
then walks the instances depth first, writing XML with Moodle's writer and
recording annotations in document order, as Moodle's structure processor
does while it writes.

Memory is one member's rows (one activity's, or the course's users), not a
table's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from coursevault.moodle2.xmlwriter import Transformer, XmlWriter
from coursevault.moodledb.site import IN_BATCH
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import (
    UNSET,
    In,
    Nested,
    Param,
    Row,
    Rows,
    Sql,
    Table,
    Unset,
    Up,
    Value,
)
from coursevault.structure.prefetch import (
    PREFETCH_WINDOW,
    USER_DATA_WINDOW,
    Density,
    PrefetchWindow,
)

Encrypt = Callable[[str], str]


@dataclass(slots=True)
class Instance:
    """One written occurrence of an element: its row and its children.

    Slots: a member of 1,000 users or 600 submissions is tens of thousands
    of instances, all held until written."""

    element: Nested
    row: Row
    parent: Instance | None
    # made on the first kid: most instances (a member's rows) have none
    kids: dict[int, list[Instance]] | None = None

    def value(self, ref: Up) -> Any:
        """What ``ref`` names, looked up from this instance upwards."""
        node: Instance | None = self
        while node is not None:
            if ref.element is None:
                if node.element.source is not None and ref.field in node.row:
                    return node.row[ref.field]
            elif node.element.name == ref.element:
                return node.row.get(ref.field)
            node = node.parent
        raise KeyError(f"no ancestor value {ref.field!r} for {self.element.name!r}")


def render(
    root: Nested,
    ctx: TaskContext,
    *,
    transform: Transformer | None = None,
    encrypt: Encrypt | None = None,
) -> bytes:
    """The member ``root`` describes, for the task ``ctx``."""
    writer = XmlWriter(transform)
    _render(writer, root, ctx, encrypt)
    return writer.getvalue()


def render_into(
    write: Callable[[bytes], object],
    root: Nested,
    ctx: TaskContext,
    *,
    transform: Transformer | None = None,
    encrypt: Encrypt | None = None,
) -> int:
    """:func:`render`, each chunk handed to ``write`` as the writer joins it
    (a caller's spool): the member is never whole in memory.  Its length."""
    writer = XmlWriter(transform, sink=write)
    _render(writer, root, ctx, encrypt)
    return writer.close()


def _render(writer: XmlWriter, root: Nested, ctx: TaskContext, encrypt: Encrypt | None) -> None:
    top = Instance(Nested("#top"), {}, None)
    wrappers = _wrappers(root)
    _expand(root, [top], ctx, wrappers)
    _write_children(writer, top, [root], ctx, encrypt, wrappers)  # the root is no wrapper


def _wrappers(root: Nested) -> frozenset[int]:
    """Ids of the elements below ``root`` that are bare wrappers: no source,
    no values, attributes, annotations or files, only children -- a
    subplugin's ``subplugin_*`` element, written once per parent row.  Half
    an M course's instances were these (319,000 of 629,000), each made,
    filed and written like a row.  A wrapper makes no instance: its
    children are read for its parent's instances and written inside it.
    Only where nothing can tell: not gated on user data, and no source below
    it that could look for it (an ``Up`` naming it, or Python rows)."""
    found: set[int] = set()
    stack = list(root.children)
    while stack:
        element = stack.pop()
        stack.extend(element.children)
        if (element.source is None and element.children and not (
                element.attrs or element.fields or element.compute or element.annotations
                or element.files or element.encrypted or element.userinfo)
                and _unseen(element)):
            found.add(id(element))
    return frozenset(found)


def _unseen(wrapper: Nested) -> bool:
    """No source below ``wrapper`` names it or takes rows from Python."""
    stack = list(wrapper.children)
    while stack:
        element = stack.pop()
        stack.extend(element.children)
        source = element.source
        if isinstance(source, Rows):
            return False
        values: Iterable[Any] = (
            source.where.values() if isinstance(source, Table)
            else source.params if isinstance(source, Sql) else ())
        for value in values:
            ref = value.value if isinstance(value, In) else value
            if isinstance(ref, Up) and ref.element == wrapper.name:
                return False
    return True


def _expand(
    element: Nested, parents: list[Instance], ctx: TaskContext, wrappers: frozenset[int]
) -> None:
    if id(element) in wrappers:  # its children hang from the parents themselves
        for child in element.children:
            _expand(child, parents, ctx, wrappers)
        return
    if element.window is not None:  # made as it is written (_write_windowed)
        return
    made: list[Instance] = []
    compute = element.compute.items() if element.compute else ()
    key = id(element)
    for parent, row in _rows(element, parents, ctx):
        for name, fn in compute:
            row[name] = fn(row, ctx)
        inst = Instance(element, row, parent)
        kids = parent.kids
        if kids is None:
            parent.kids = {key: [inst]}
        else:
            group = kids.get(key)
            if group is None:
                kids[key] = [inst]
            else:
                group.append(inst)
        made.append(inst)
    if made:
        for child in element.children:
            _expand(child, made, ctx, wrappers)


def _rows(
    element: Nested, parents: list[Instance], ctx: TaskContext
) -> Iterable[tuple[Instance, Row]]:
    source = element.source
    if source is None:
        return [(p, {}) for p in parents]
    if element.userinfo and not ctx.users:
        return []
    if isinstance(source, Table):
        return _table_rows(source, parents, ctx, element.userinfo)
    if isinstance(source, Sql) and source.key is not None:
        return _keyed_rows(source, parents, ctx, element.userinfo)
    if isinstance(source, Sql):
        return [
            (p, row)
            for p in parents
            for row in ctx.reader.sql(source.sql, [_resolve(v, p, ctx) for v in source.params])
        ]
    if isinstance(source, Rows):
        return [(p, dict(row)) for p in parents for row in source.fn(ctx, _real(p))]
    raise TypeError(f"unknown source {source!r}")


def _real(parent: Instance) -> Instance | None:
    return None if parent.element.name == "#top" else parent


def _table_rows(
    source: Table, parents: list[Instance], ctx: TaskContext, userinfo: bool = False
) -> list[tuple[Instance, Row]]:
    """One query for all parents: the parent-bound column becomes an IN list."""
    bound = [k for k, v in source.where.items() if isinstance(v, Up)]
    if len(bound) > 1:  # rare: fall back to a query per parent
        return [
            (p, row)
            for p in parents
            for row in ctx.reader.rows(
                source.table,
                {k: _resolve(v, p, ctx) for k, v in source.where.items()},
                order=source.order,
            )
        ]
    fixed = {k: _resolve(v, None, ctx) for k, v in source.where.items() if k not in bound}
    if not bound:
        rows = _task_rows(source, fixed, ctx, userinfo)
        return [(p, dict(row)) for p in parents for row in rows]
    key = bound[0]
    by_parent = {id(p): _resolve(source.where[key], p, ctx) for p in parents}
    values = [v for v in dict.fromkeys(by_parent.values()) if v is not None]
    grouped: dict[str, list[Row]] = {}
    if values:
        for row in ctx.reader.rows(source.table, {**fixed, key: values}, order=source.order):
            grouped.setdefault(str(row[key]), []).append(row)
    return [
        (p, dict(row)) for p in parents for row in grouped.get(str(by_parent[id(p)]), [])
    ]


def table_rows(source: Table, ctx: TaskContext) -> list[Row]:
    """The task's rows of a Table bound to the task only (``Param`` and
    literals), for definitions computing rows in Python: read for all the
    plan's tasks at once, as the engine reads such sources (_task_rows)."""
    return _task_rows(source, {k: _resolve(v, None, ctx) for k, v in source.where.items()}, ctx)


def _task_rows(
    source: Table, fixed: dict[str, Any], ctx: TaskContext, userinfo: bool = False
) -> list[Row]:
    """Rows of a source bound only to the task (and literals).

    Every activity task asks the same tables by its own context or module id
    (role overrides, filters, comments, events, completion...): a course of
    60 activities would cost 60 queries per table.  When the plan knows the
    values that parameter takes across all its tasks, the first task to ask
    fetches them all in one query and later tasks are served from the run's
    memory (rows keep the database's order within each value).
    """
    params = [(k, v.name) for k, v in source.where.items() if isinstance(v, Param)]
    if len(params) == 1:
        column, name = params[0]
        values = ctx.run.plan_values(name, ctx.params.get("modulename", ""))
        if values and str(fixed[column]) in values:
            literal = tuple(sorted((k, str(v)) for k, v in fixed.items() if k != column))
            # the values are the plan's (of one module for activityid): the
            # same query for every task asking the same table and column
            key = (source.table, column, literal, source.order, name,
                   ctx.params.get("modulename", "") if name == "activityid" else "")
            windows: dict[Any, PrefetchWindow] = ctx.run.memo.setdefault("task_rows", {})
            if key not in windows:
                windows[key] = prefetch_window(values, name, userinfo, ctx)
            rest = {k: v for k, v in fixed.items() if k != column}

            def fetch(batch: list[str]) -> Iterator[tuple[str, Row]]:
                for row in ctx.reader.rows(source.table, {**rest, column: batch},
                                           order=source.order):
                    yield str(row[column]), row

            return [dict(r) for r in windows[key].rows(str(fixed[column]), fetch)]
    return list(ctx.reader.rows(source.table, fixed, order=source.order))


def prefetch_window(
    values: list[str], param: str, userinfo: bool, ctx: TaskContext
) -> PrefetchWindow:
    """The window reading ahead a source's rows for the plan's ``values``:
    user data of one module's activities (submissions by ``activityid``)
    grows with the course's users, so it is read ahead for fewer tasks
    (prefetch.USER_DATA_WINDOW at most, as many as USER_ROWS_BUDGET rows
    take by the run's :func:`user_density`); other rows -- and user data by
    context, a few rows a task -- for the usual window."""
    if userinfo and param == "activityid":
        return PrefetchWindow(values, USER_DATA_WINDOW, user_density(ctx))
    return PrefetchWindow(values, PREFETCH_WINDOW)


def user_density(ctx: TaskContext) -> Density:
    """The rows per task the run's windows of user data have read."""
    density: Density = ctx.run.memo.setdefault("user_density", Density())
    return density


def sql_rows(source: Sql, ctx: TaskContext) -> list[Row]:
    """The task's rows of a keyed :class:`Sql` bound to a task parameter
    (``In(Param(...))``): for definitions that compute rows in Python
    (``Rows``) from SQL every task of the plan asks."""
    [(_parent, rows)] = _keyed_groups(source, [None], ctx).items()
    return [dict(r) for r in rows]


def _keyed_rows(
    source: Sql, parents: list[Instance], ctx: TaskContext, userinfo: bool = False
) -> list[tuple[Instance, Row]]:
    groups = _keyed_groups(source, parents, ctx, userinfo)
    return [(p, dict(row)) for p in parents for row in groups[id(p)]]


def _keyed_groups(
    source: Sql, parents: list[Any], ctx: TaskContext, userinfo: bool = False
) -> dict[int, list[Row]]:
    """Each parent's rows of a keyed Sql (elements.Sql), fetched with the
    values of every parent -- or of every task of the plan -- at once."""
    [index] = [i for i, v in enumerate(source.params) if isinstance(v, In)]
    marker = source.params[index]
    assert isinstance(marker, In) and source.key is not None
    fixed = [None if isinstance(v, In) else _resolve(v, None, ctx) for v in source.params]
    by_parent = {id(p): _resolve(marker.value, p, ctx) for p in parents}
    grouped: dict[str, list[Row]]
    if isinstance(marker.value, Param):
        name = marker.value.name
        value = ctx.param(name)
        module = ctx.params.get("modulename", "") if name == "activityid" else ""
        values = ctx.run.plan_values(name, module)
        if str(value) not in values:
            values = [str(value)]
        windows: dict[Any, PrefetchWindow] = ctx.run.memo.setdefault("keyed_sql", {})
        key = (source.sql, tuple(map(str, fixed)), source.key, name, module, tuple(values))
        if key not in windows:
            windows[key] = prefetch_window(values, name, userinfo, ctx)
        mine = windows[key].rows(
            str(value), lambda batch: _keyed_pairs(source, fixed, index, batch, ctx))
        grouped = {str(value): mine}
    else:
        values = [str(v) for v in dict.fromkeys(by_parent.values()) if v is not None]
        grouped = _fetch_keyed(source, fixed, index, values, ctx)
    return {
        pid: [] if value is None else grouped.get(str(value), [])
        for pid, value in by_parent.items()
    }


def _fetch_keyed(
    source: Sql, fixed: list[Any], index: int, values: list[str], ctx: TaskContext
) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for key, row in _keyed_pairs(source, fixed, index, values, ctx):
        grouped.setdefault(key, []).append(row)
    return grouped


def _keyed_pairs(
    source: Sql, fixed: list[Any], index: int, values: list[str], ctx: TaskContext
) -> Iterator[tuple[str, Row]]:
    """A keyed Sql's rows for ``values``, each with its key (taken out of the row)."""
    assert source.key is not None
    for start in range(0, len(values), IN_BATCH):
        params = list(fixed)
        params[index] = values[start : start + IN_BATCH]
        for row in ctx.reader.sql(source.sql, params):
            yield str(row.pop(source.key)), row


def _resolve(value: Value | In, parent: Instance | None, ctx: TaskContext) -> Any:
    if isinstance(value, In):
        value = value.value
    if isinstance(value, Param):
        return ctx.param(value.name)
    if isinstance(value, Up):
        if parent is None:
            raise KeyError(f"{value!r} outside any element")
        return parent.value(value)
    return value


def _write(
    writer: XmlWriter, inst: Instance, ctx: TaskContext, encrypt: Encrypt | None,
    wrappers: frozenset[int],
) -> None:
    element, row = inst.element, inst.row
    for area in element.files:
        _annotate_files(ctx, area.component, area.filearea, row, area.itemid_field,
                        area.context_field)
    attrs = element.attrs
    if not (attrs or element.encrypted or element.children):
        writer.record(element.name, element.fields, row.get, UNSET)
        for item, name in element.annotations:
            ctx.ids.add(item, row.get(name))
        return
    writer.begin(element.name, {a: _text(row.get(a)) for a in attrs} if attrs else None)
    if element.encrypted:
        _write_fields(writer, element, row, encrypt)
    else:
        writer.values(element.fields, row.get, UNSET)
    for item, name in element.annotations:
        ctx.ids.add(item, row.get(name))
    _write_children(writer, inst, element.children, ctx, encrypt, wrappers)
    writer.end(element.name)


def _write_children(
    writer: XmlWriter, inst: Instance, children: list[Nested], ctx: TaskContext,
    encrypt: Encrypt | None, wrappers: frozenset[int],
) -> None:
    """``inst``'s instances of each of ``children`` in turn, each let go
    once written: the member's rows go as its XML grows, and no kid is left
    in a cycle with its parent for the collector.  A wrapper (_wrappers) is
    written around its own children's."""
    kids = inst.kids
    for child in children:
        if child.window is not None:
            _write_windowed(writer, inst, child, ctx, encrypt, wrappers)
        elif id(child) in wrappers:
            writer.begin(child.name)
            _write_children(writer, inst, child.children, ctx, encrypt, wrappers)
            writer.end(child.name)
        elif kids is not None:
            group = kids.pop(id(child), None)
            if group:
                group.reverse()
                while group:
                    _write(writer, group.pop(), ctx, encrypt, wrappers)


def _write_windowed(
    writer: XmlWriter, parent: Instance, element: Nested, ctx: TaskContext,
    encrypt: Encrypt | None, wrappers: frozenset[int],
) -> None:
    """``parent``'s instances of a windowed element (Nested ``window``:
    users.xml's users): its rows taken ``window`` at a time as they come
    from Python, each window's instances made, expanded (one query per
    child element and window) and written, then let go.  The bytes are
    those of expanding them all first: rows come in the same order, and
    children are grouped per instance whatever the window."""
    source = element.source
    if not isinstance(source, Rows) or element.window is None:
        raise TypeError(f"{element.name}: a windowed element takes its rows from Python")
    if element.userinfo and not ctx.users:
        return
    rows = iter(source.fn(ctx, _real(parent)))
    compute = element.compute.items() if element.compute else ()
    while made := [Instance(element, dict(row), parent)
                   for row in itertools.islice(rows, element.window)]:
        for inst in made:
            for name, fn in compute:
                inst.row[name] = fn(inst.row, ctx)
        for child in element.children:
            _expand(child, made, ctx, wrappers)
        made.reverse()
        while made:
            _write(writer, made.pop(), ctx, encrypt, wrappers)


def _write_fields(
    writer: XmlWriter, element: Nested, row: Row, encrypt: Encrypt | None
) -> None:
    """An element's final elements, some of them encrypted."""
    for name in element.fields:
        if isinstance(row.get(name), Unset):
            continue
        value = _text(row.get(name))
        if name in element.encrypted:
            if encrypt is None:
                raise ValueError(f"{element.name}/{name} is encrypted but the site has no key")
            # encrypted_final_element::set_value encrypts whatever it is handed:
            # PHP's openssl_encrypt takes a null as ''
            writer.full(name, encrypt(value or ""), {"encrypted": "true"})
        else:
            writer.full(name, value)


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else str(value)


def _annotate_files(
    ctx: TaskContext,
    component: str,
    filearea: str,
    row: Row,
    itemid_field: str | None,
    context_field: str | None,
) -> None:
    contextid = row.get(context_field) if context_field else ctx.param("contextid")
    itemid = row.get(itemid_field) if itemid_field else None
    if itemid_field and itemid is None:
        return
    ctx.annotate("file", ctx.run.files_of(str(contextid), component, filearea, itemid))
