"""The order Moodle reads its annotations back in, on PostgreSQL.

Moodle keeps a backup's annotations in the temporary table
``backup_ids_temp`` and reads them back without ORDER BY: users.xml,
roles.xml, groups.xml and files.xml list their rows in the table's storage
order.  Every task ends by *updating* its ``user``/``file``/... rows to
``userfinal``/``filefinal`` (``move_annotations_to_final``), one autocommitted
UPDATE per row, and on PostgreSQL an UPDATE writes a new row version: on the
same heap page when it fits, else on the page the table last grew to.  A
course with many annotations (gen_s: 101 users) therefore comes back with
every eighth or so row moved behind the others.

This module replays that on a model of PostgreSQL's heap: 8 kB pages, row
versions of the sizes ``backup_ids_temp`` rows have, line pointers that stay
(``LP_DEAD``) when a page is pruned (the indexed ``itemname`` changes, so no
update is HOT), pruning when a page's free space falls under a tenth of it
(``heap_page_prune_opt``) or after an update left it, and new versions going
to the table's target block or a new page (``RelationGetBufferForTuple``).
Moodle's ``record_exists`` before every insert and every move reads the
small table sequentially, giving every page a chance to be pruned; the move
itself walks a task's rows by id.  Checked on the reference site: gen_s's
users.xml, roles.xml and files.xml come out in Moodle's order.
On MySQL/MariaDB the table is clustered by id and an UPDATE keeps its place:
the order there is the order of first annotation, which is :class:`IdSet`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PAGE_SIZE = 8192
PAGE_HEADER = 24
LINE_POINTER = 4
PRUNE_BELOW = PAGE_SIZE // 10  # heap_page_prune_opt's minfree with fillfactor 100
MAX_TUPLES = 291  # MaxHeapTuplesPerPage: line pointers a page can hold
LIVE, DEAD, GONE = 0, 1, 2


def _align(n: int) -> int:
    return (n + 7) & ~7


def row_size(itemname: str) -> int:
    """MAXALIGNed size of a ``backup_ids_temp`` row: header with null bitmap
    (24), id int8, backupid varchar(32) and itemname as short varlenas,
    itemid and newitemid int8; parentitemid and info are NULL."""
    data = _align(8 + 33 + 1 + len(itemname)) + 16
    return _align(24 + data)


@dataclass(slots=True)  # an M course's backup has 127,000 of them
class _Row:
    item: str
    itemid: str
    state: int = LIVE


# A pruned version: the page keeps its line pointer, nothing else of it is
# read again, so every one shares this row (half an M course's 127,000).
_GONE = _Row("", "", GONE)


@dataclass(slots=True)
class _Page:
    rows: list[_Row] = field(default_factory=list)
    used: int = 0  # bytes of row versions not yet pruned away
    dead: list[int] = field(default_factory=list)
    full: bool = False
    prunable: bool = False

    def heap_free(self) -> int:
        """``PageGetHeapFreeSpace``: free bytes, less a new line pointer; none
        once the page has all the line pointers it may (LP_DEAD ones stay)."""
        if len(self.rows) >= MAX_TUPLES:
            return 0
        free = PAGE_SIZE - PAGE_HEADER - LINE_POINTER * len(self.rows) - self.used
        return max(0, free - LINE_POINTER)

    def add(self, row: _Row) -> int:
        self.rows.append(row)
        self.used += row_size(row.item)
        return len(self.rows) - 1

    def kill(self, slot: int) -> None:
        self.rows[slot].state = DEAD
        self.dead.append(slot)
        self.prunable = True

    def touch(self) -> None:
        """``heap_page_prune_opt`` on access: dead versions lose their storage,
        their line pointers stay (``LP_DEAD``)."""
        if self.prunable and (self.full or self.heap_free() < PRUNE_BELOW):
            rows = self.rows
            for slot in self.dead:
                self.used -= row_size(rows[slot].item)
                rows[slot] = _GONE  # only its line pointer is left to model
            self.dead = []
            self.full = self.prunable = False


class TempTableModel:
    """``backup_ids_temp`` on PostgreSQL, for one backup."""

    def __init__(self) -> None:
        self.pages: list[_Page] = []
        self.target: int | None = None
        # pages an access would prune now (dead versions, and full or short of
        # space): all a sequential scan can change
        self.pending: set[int] = set()
        # item -> id -> (page, slot) of the live row
        self.live: dict[str, dict[str, tuple[int, int]]] = {}

    def _touch_all(self) -> None:
        """A sequential scan (``record_exists`` on the small temp table): only
        the pages pruning would change are visited."""
        for number in self.pending:
            self.pages[number].touch()
        self.pending.clear()

    def _check(self, number: int) -> None:
        page = self.pages[number]
        if page.prunable and (page.full or page.heap_free() < PRUNE_BELOW):
            self.pending.add(number)

    def _kill(self, number: int, slot: int) -> None:
        self.pages[number].kill(slot)
        self._check(number)

    def _page_for(self, size: int, avoid: int | None = None) -> int:
        target = self.target
        if target is not None and target != avoid and self.pages[target].heap_free() >= size:
            return target
        self.pages.append(_Page())
        self.target = len(self.pages) - 1
        return self.target

    def _put(self, page: int, item: str, itemid: str) -> None:
        slot = self.pages[page].add(_Row(item, itemid))
        self.live.setdefault(item, {})[itemid] = (page, slot)
        self._check(page)

    def insert(self, item: str, itemid: str) -> None:
        """``insert_backup_ids_record``: once per (item, id)."""
        self._touch_all()
        if itemid not in self.live.get(item, {}):
            self._put(self._page_for(row_size(item)), item, itemid)

    def insert_all(self, rows: Iterable[tuple[str, str]]) -> None:
        for item, itemid in rows:
            self.insert(item, itemid)

    def move_to_final(self, items: Sequence[str]) -> None:
        """``move_annotations_to_final`` for each item: its rows by id become
        ``<item>final`` unless that exists; the rest are deleted."""
        for item in items:
            final = item + "final"
            rows = self.live.get(item, {})
            for itemid in sorted(rows, key=int):
                self._touch_all()
                if itemid in self.live.get(final, {}):
                    continue
                self._update(item, itemid, final)
            for number, slot in self.live.pop(item, {}).values():
                self._kill(number, slot)

    def _update(self, item: str, itemid: str, final: str) -> None:
        number, slot = self.live[item].pop(itemid)
        page = self.pages[number]
        page.touch()  # the UPDATE's own fetch of the row
        self.pending.discard(number)
        size = row_size(final)
        if size <= page.heap_free():
            target = number
        else:
            target = self._page_for(size, avoid=number)
            page.full = True
        self._kill(number, slot)
        self._put(target, final, itemid)

    def read(self, item: str) -> list[str]:
        """The ids of ``item`` rows in storage order (a sequential scan)."""
        self._touch_all()
        return [row.itemid for page in self.pages for row in page.rows
                if row.state == LIVE and row.item == item]
