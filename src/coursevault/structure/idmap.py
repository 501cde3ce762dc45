"""The restore's map of old id -> new id per item type, kept compact.

Moodle's restore keeps it in ``backup_ids_temp``; here it lives in memory
for the whole run, and an M course maps 126,742 ids: as a dict of strings
to ints per table that was about 13 MB, growing with the course.  A
backup lists a table's rows by id, so a table's old ids mostly come in
ascending order: those go into two arrays of 64-bit integers (16 bytes a
pair) and are found by binary search; an id that comes out of order, or is
not written as a plain decimal number (a key is the id's text, as the
backup wrote it), goes into a small dict beside them.  Lookups and
overwrites behave as one dict keyed by the id's text.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import Any


class _TableIds:
    """One table's pairs: ascending plain ids in arrays, the rest in a dict."""

    __slots__ = ("news", "olds", "others")

    def __init__(self) -> None:
        self.olds = array("q")
        self.news = array("q")
        self.others: dict[str, int] = {}

    def set(self, text: str, new: int) -> None:
        old = _plain(text)
        if old is not None:
            olds = self.olds
            if not olds or old > olds[-1]:
                olds.append(old)
                self.news.append(new)
                return
            at = bisect_left(olds, old)
            if at < len(olds) and olds[at] == old:
                self.news[at] = new
                return
        self.others[text] = new

    def get(self, text: str) -> int | None:
        old = _plain(text)
        if old is not None:
            olds = self.olds
            at = bisect_left(olds, old)
            if at < len(olds) and olds[at] == old:
                return self.news[at]
        return self.others.get(text)

    def __len__(self) -> int:
        return len(self.olds) + len(self.others)


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
