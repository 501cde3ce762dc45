"""The declarative part: nested elements, their sources and annotations.

A plugin describes each XML member it writes as a tree of :class:`Nested`
elements, as Moodle's ``backup_nested_element`` does: attributes and final
elements (leaf values) in the order Moodle writes them, children, and where
the rows come from -- a table with parameters bound to an ancestor's values
or to the task's ids (:class:`Table`), Moodle-style SQL (:class:`Sql`), or a
Python function for what Moodle computes in PHP (:class:`Rows`).  Nothing
here touches a database; structure/engine.py runs the tree.

An element with no source is a wrapper written once per parent instance
(``<options>`` around the options), even when it ends up empty, as Moodle
does.  ``userinfo=True`` marks an element whose rows are user data: the
backup leaves its source unread when users are excluded, so its wrapper is
written empty, as Moodle's ``if ($userinfo) { set_source... }`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coursevault.structure.context import TaskContext
    from coursevault.structure.engine import Instance

Row = dict[str, Any]


class Unset:
    """A row value for a final element Moodle leaves unset (``set_value``
    never called, as ``mnethosturl_final_element`` does for local users):
    the element is not written at all, where None writes ``$@NULL@$``."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()


@dataclass(frozen=True)
class Param:
    """A value of the running task or backup: ``courseid``, ``contextid``,
    ``activityid``, ``moduleid``, ``sectionid``, ``blockid`` or a setting."""

    name: str


@dataclass(frozen=True)
class Up:
    """A value of an ancestor's row: the nearest ancestor with a source whose
    row has ``field`` (Moodle's ``backup::VAR_PARENTID`` and ``'../../id'``),
    or the nearest ancestor named ``element``."""

    field: str = "id"
    element: str | None = None


Value = Param | Up | str | int | None


@dataclass
class Table:
    """Rows of one table: ``where`` maps columns to values; ``order`` is an
    ORDER BY clause (None keeps the database's order, as Moodle does).
    Instances of one element under many parents are fetched in one query
    per batch of parents, never one per row."""

    table: str
    where: Mapping[str, Value] = field(default_factory=dict)
    order: str | None = None


@dataclass(frozen=True)
class In:
    """The one parameter of a keyed :class:`Sql` that varies per parent or
    per task: its ``?`` stands inside ``IN (?)`` and is bound to the values
    of every parent (an :class:`Up`) or of every task of the plan (a
    :class:`Param`) at once."""

    value: Param | Up


@dataclass
class Sql:
    """Moodle-style SQL (``{table}``, ``?``) run once per parent instance.

    Keyed form: ``key`` names a column the SQL selects holding the value of
    its one :class:`In` parameter (``WHERE ti.itemid IN (?)``, ``SELECT
    ti.itemid AS cv_key, ...``).  The engine then runs it once for all
    parents -- or, for a ``Param``, once for all the plan's tasks, served
    from the run's memory -- groups the rows by that column (dropped from the
    rows) and gives each parent its group in the order the database gave
    it.  Use it only where that order within a key is the order of the
    per-parent query (an ORDER BY, a unique key, or checked against the
    reference site)."""

    sql: str
    params: Sequence[Value | In] = ()
    key: str | None = None


@dataclass
class Rows:
    """Rows computed in Python from the task and the parent instance."""

    fn: Callable[[TaskContext, Instance | None], Iterable[Row]]


Source = Table | Sql | Rows


def _no_rows(_ctx: TaskContext, _parent: Instance | None) -> Iterable[Row]:
    return ()


# The source of an element a setting leaves empty (Moodle sets its source
# only under a condition).  structure/prune.py reads an element whose source
# becomes NO_ROWS under narrower settings as one the narrower backup cuts.
NO_ROWS = Rows(_no_rows)


@dataclass(frozen=True)
class FileArea:
    """Files of ``component``/``filearea`` in the task's context (or the
    context a row names in ``context_field``), for item ``itemid_field`` of
    the row (None: every item)."""

    component: str
    filearea: str
    itemid_field: str | None = None
    context_field: str | None = None


# The ``window`` of elements with a row per user of the course (users.xml's
# users): what is held at once while writing them, at the cost of a query
# per child element and window.
USER_ROWS_WINDOW = 500


class Nested:
    """One XML element that holds elements (``backup_nested_element``)."""

    def __init__(
        self,
        name: str,
        attrs: Sequence[str] = (),
        fields: Sequence[str] = (),
        *,
        source: Source | None = None,
        userinfo: bool = False,
        user_rows: Callable[[Mapping[str, str | None]], bool] | None = None,
        annotate: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        files: Sequence[FileArea] = (),
        compute: Mapping[str, Callable[[Row, TaskContext], Any]] | None = None,
        encrypted: Sequence[str] = (),
        children: Sequence[Nested] = (),
        window: int | None = None,
    ) -> None:
        self.name = name
        self.attrs = tuple(attrs)
        self.fields = tuple(fields)
        self.source = source
        self.userinfo = userinfo
        # which of its rows are user data when not all are (userinfo): the
        # source already leaves them out without users; this says so to
        # what prunes a written member (structure/prune.py)
        self.user_rows = user_rows
        pairs = annotate.items() if isinstance(annotate, Mapping) else annotate
        # (item, field): annotate_ids('user', 'userid') is ('user', 'userid')
        self.annotations: list[tuple[str, str]] = [(item, f) for item, f in pairs]
        self.files: list[FileArea] = list(files)
        self.compute = dict(compute or {})
        self.encrypted = frozenset(encrypted)
        # rows taken from Python (a Rows source), made, expanded and written
        # ``window`` at a time, not all before the first is written
        # (engine._write_windowed): users.xml's users, whose rows grow with
        # the course.  Under many parents it would cost a query per parent
        # and child element.
        self.window = window
        self.children: list[Nested] = []
        self.add(*children)

    def add(self, *children: Nested) -> Nested:
        """Append children in writing order; returns self for chaining."""
        self.children.extend(children)
        return self

    def set_source(self, source: Source) -> Nested:
        self.source = source
        return self

    def annotate_ids(self, item: str, field_name: str) -> Nested:
        self.annotations.append((item, field_name))
        return self

    def annotate_files(
        self, component: str, filearea: str, itemid_field: str | None = None
    ) -> Nested:
        self.files.append(FileArea(component, filearea, itemid_field))
        return self

    def find(self, name: str) -> Nested:
        """The descendant (or self) named ``name``: for plugins adding to a
        tree another plugin defined (subplugins)."""
        stack = [self]
        while stack:
            node = stack.pop()
            if node.name == name:
                return node
            stack.extend(reversed(node.children))
        raise KeyError(name)

    def __repr__(self) -> str:
        return f"Nested({self.name!r})"
