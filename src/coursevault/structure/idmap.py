"""The restore's map of old id -> new id per item type, kept compact.

Moodle's restore keeps it in ``backup_ids_temp``; here it lives in memory
for the whole run, and an M course maps 126,742 ids: as a dict of strings
to ints per table that was about 13 MB, growing with the course.  A
backup lists a table's rows by id, so a table's old ids mostly come in
ascending order, and often one after another (rows made together); the
restore gives new ids one after another too (reserved in blocks, counted
on).  So a table's pairs are kept as runs -- old id, new id, how many
follow both by one -- in three arrays (20 bytes a run), found by binary
search: an M course's 126,310 ids in order make 155 runs (4 KB, where
pairs took 2 MB and grew with the course).  An id that comes out of
order, or is not written as a plain decimal number (a key is the id's
text, as the backup wrote it), goes into a small dict beside them, and so
does an id of a run set again to another new id.  Lookups and overwrites
behave as one dict keyed by the id's text.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from typing import Any


class _TableIds:
    """One table's pairs: runs of ascending plain ids in arrays, the rest in
    dicts."""

    __slots__ = ("changed", "lens", "news", "olds", "others")

    def __init__(self) -> None:
        # run k maps olds[k] + i to news[k] + i for 0 <= i < lens[k]
        self.olds = array("q")
        self.news = array("q")
        self.lens = array("I")
        self.others: dict[str, int] = {}  # ids out of order, or not plain
        self.changed: dict[str, int] = {}  # ids of a run set again to another id

    def set(self, text: str, new: int) -> None:
        old = _plain(text)
        if old is None:
            self.others[text] = new
            return
        olds, lens = self.olds, self.lens
        if olds:
            end = olds[-1] + lens[-1]  # the old id after the last run's
            if old == end and new == self.news[-1] + lens[-1] and lens[-1] < _MAX_RUN:
                lens[-1] += 1
                return
            if old < end:
                at = bisect_right(olds, old) - 1
                if at >= 0 and old < olds[at] + lens[at]:
                    if self.news[at] + old - olds[at] == new:
                        self.changed.pop(text, None)
                    else:
                        self.changed[text] = new
                else:
                    self.others[text] = new
                return
        olds.append(old)
        self.news.append(new)
        lens.append(1)

    def get(self, text: str) -> int | None:
        old = _plain(text)
        if old is None:
            return self.others.get(text)
        if self.changed:
            hit = self.changed.get(text)
            if hit is not None:
                return hit
        olds = self.olds
        at = bisect_right(olds, old) - 1
        if at >= 0 and old < olds[at] + self.lens[at]:
            return self.news[at] + old - olds[at]
        return self.others.get(text)

    def __len__(self) -> int:
        return sum(self.lens) + len(self.others)


_MAX_RUN = 2**32 - 1  # a run's length is an unsigned 32-bit count


def _plain(text: str) -> int | None:
    """The id as an integer when its text is exactly that integer's (``12``,
    not ``012``, ``+12`` or `` 12``), else None."""
    if text.isdigit() and text.isascii() and (text[0] != "0" or text == "0") \
            and len(text) < 19:
        return int(text)
    return None


class IdMap:
    """Old id -> new id per table, for one restore (then dropped)."""

    def __init__(self) -> None:
        self._map: dict[str, _TableIds] = {}

    def set(self, table: str, old: Any, new: int) -> None:
        ids = self._map.get(table)
        if ids is None:
            ids = self._map[table] = _TableIds()
        ids.set(str(old), new)

    def get(self, table: str, old: Any) -> int | None:
        if old is None:
            return None
        ids = self._map.get(table)
        return None if ids is None else ids.get(str(old))

    def counts(self) -> dict[str, int]:
        return {table: len(ids) for table, ids in sorted(self._map.items()) if len(ids)}
