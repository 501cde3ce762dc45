"""Saying where two members differ, briefly: the first differing line with its
element path, and a short unified diff.

Members can be megabytes of XML whose only difference is one line; the
common head and tail are cut off before difflib sees them, so a diff costs
what differs, not what is the same.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from .mbzxml import path_at

MAX_SHOWN = 240  # characters of a line shown in a report
MAX_DIFFED = 4000  # lines of each side handed to difflib past the common head


@dataclass(frozen=True)
class LineDifference:
    """The first line that differs (1-based, in the masked member), both
    versions of it, and the element path open at its start in theirs."""

    line: int
    ours: str
    theirs: str
    path: str


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8", "replace").splitlines()


def _shown(line: str | None) -> str:
    if line is None:
        return "(end of member)"
    return line if len(line) <= MAX_SHOWN else line[:MAX_SHOWN] + "…"


def _common_head(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def first_difference(ours: bytes, theirs: bytes, member: str) -> LineDifference:
    a, b = _lines(ours), _lines(theirs)
    i = _common_head(a, b)
    if i == len(a) == len(b):  # same lines, different line ends or trailing bytes
        return LineDifference(i, "(same lines; line ends or final newline differ)", "", "")
    offset = sum(len(line.encode()) + 1 for line in b[:i])
    path = path_at(theirs, min(offset, len(theirs))) if member.endswith(".xml") else ""
    return LineDifference(
        i + 1, _shown(a[i] if i < len(a) else None), _shown(b[i] if i < len(b) else None), path
    )


_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@")


def _shift(line: str, by: int) -> str:
    m = _HUNK.match(line)
    if not m:
        return line
    return f"@@ -{int(m[1]) + by}{m[2] or ''} +{int(m[3]) + by}{m[4] or ''} @@{line[m.end() :]}"


def short_diff(theirs: bytes, ours: bytes, member: str, limit: int = 20) -> list[str]:
    """The first ``limit`` lines of a unified diff from theirs to ours, with
    true line numbers."""
    a, b = _lines(theirs), _lines(ours)
    head = max(_common_head(a, b) - 3, 0)
    wa, wb = a[head : head + MAX_DIFFED], b[head : head + MAX_DIFFED]
    diff = difflib.unified_diff(wa, wb, f"theirs/{member}", f"ours/{member}", lineterm="")
    out = []
    for line in diff:
        out.append(_shift(_shown(line), head))
        if len(out) >= limit:
            break
    return out
