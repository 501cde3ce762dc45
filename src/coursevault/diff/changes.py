"""What a diff found: changes to members, records and fields, their counts
and groups, and the lines a person reads.

Kept apart from the walk (treediff.py), which finds them: the records are
what the API returns and the CLI prints, whatever tree they came from.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from coursevault.moodle2.layout import course_part
from coursevault.store.ids import ObjectId

# (member path, a changed record's field by name or None) -> the part of the
# course it belongs to (moodle2.layout.course_part)
PartOf = Callable[[str, Callable[[str], str | None] | None], str]


@dataclass
class FieldChange:
    name: str
    old: str | None
    new: str | None
    diff: list[str] | None = None  # short unified diff for long text

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"field": self.name, "old": self.old, "new": self.new}
        if self.diff is not None:
            d["diff"] = self.diff
        return d


@dataclass
class RecordChange:
    change: str  # "added", "removed", "modified", "moved"
    member: str
    path: str  # element address inside the member
    tag: str
    id: str | None
    fields: list[FieldChange] = field(default_factory=list)
    moved_from: str | None = None  # "member:path" for moves
    oid: ObjectId | None = None  # the record's content id (added/removed), to find moves

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "change": self.change,
            "member": self.member,
            "path": self.path,
            "tag": self.tag,
            "id": self.id,
        }
        if self.fields:
            d["fields"] = [f.as_dict() for f in self.fields]
        if self.moved_from:
            d["moved_from"] = self.moved_from
        return d


@dataclass
class MemberChange:
    change: str  # "added", "removed", "modified"
    path: str
    kind: str  # member kind: file or dir
    old_size: int | None
    new_size: int | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TreeDiff:
    members: list[MemberChange] = field(default_factory=list)
    records: list[RecordChange] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"added": 0, "removed": 0, "modified": 0, "moved": 0}
        for r in self.records:
            out[r.change] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "members": [m.as_dict() for m in self.members],
            "records": [r.as_dict() for r in self.records],
            "counts": self.counts(),
            "groups": self.groups(),
        }

    def groups(self, part_of: PartOf = course_part) -> dict[str, dict[str, int]]:
        """Counts per part of the course (for --stat): by Moodle's layout,
        activity, section, file area or top-level file, unless ``part_of``
        names another."""
        out: dict[str, dict[str, int]] = {}
        for m in self.members:
            g = out.setdefault(group_of(m.path, None, part_of), _zero())
            g[f"members_{m.change}"] += 1
        for r in self.records:
            g = out.setdefault(group_of(r.member, r, part_of), _zero())
            g[r.change] += 1
        return dict(sorted(out.items()))


def _zero() -> dict[str, int]:
    return {
        "added": 0,
        "removed": 0,
        "modified": 0,
        "moved": 0,
        "members_added": 0,
        "members_removed": 0,
        "members_modified": 0,
    }


def group_of(
    member_path: str, record: RecordChange | None = None, part_of: PartOf = course_part
) -> str:
    """The part of a course a change belongs to, by ``part_of`` (Moodle's
    layout unless told otherwise: the walk itself knows no layout)."""
    if record is None:
        return part_of(member_path, None)
    fields = record.fields
    return part_of(
        member_path, lambda name: next((f.new or f.old for f in fields if f.name == name), None)
    )


def short_text_diff(old: str, new: str, max_lines: int = 12) -> list[str]:
    """A few lines of unified diff; long one-line HTML is split at tags and sentences."""

    def lines(text: str) -> list[str]:
        text = text.replace("&gt;", "&gt;\n").replace("</p>", "</p>\n").replace(". ", ".\n")
        return text.splitlines()

    out = [
        line
        for line in difflib.unified_diff(lines(old), lines(new), lineterm="", n=1)
        if not line.startswith(("---", "+++"))
    ]
    if len(out) > max_lines:
        out = [*out[:max_lines], f"... ({len(out) - max_lines} more lines)"]
    return out


def iter_lines(diff: TreeDiff) -> Iterator[str]:
    """Human-readable lines, grouped by member."""
    by_member: dict[str, list[RecordChange]] = {}
    for r in diff.records:
        by_member.setdefault(r.member, []).append(r)
    sign = {"added": "+", "removed": "-", "modified": "M", "moved": ">"}
    for m in diff.members:
        size = ""
        if m.change == "modified":
            size = f" ({m.old_size} -> {m.new_size} bytes)"
        elif m.kind != "dir":
            size = f" ({m.new_size if m.new_size is not None else m.old_size} bytes)"
        yield f"{sign[m.change]} {m.path}{'/' if m.kind == 'dir' else ''}{size}"
        yield from _record_lines(by_member.pop(m.path, []))
    for member, recs in by_member.items():
        yield f"M {member}"
        yield from _record_lines(recs)


def _record_lines(recs: list[RecordChange]) -> Iterator[str]:
    sign = {"added": "+", "removed": "-", "modified": "~", "moved": ">"}
    for r in recs:
        line = f"    {sign[r.change]} {r.path}"
        if r.moved_from:
            line += f"  (from {r.moved_from})"
        yield line
        for f in r.fields:
            if f.diff is not None:
                yield f"        {f.name}:"
                for d in f.diff:
                    yield f"          {d}"
            else:
                yield f"        {f.name}: {_short(f.old)} -> {_short(f.new)}"


def _short(v: str | None) -> str:
    if v is None:
        return "(absent)"
    return repr(v if len(v) <= 60 else v[:57] + "...")
