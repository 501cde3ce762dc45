"""Snapshot selectors: how users name a point in a course's history.

* an id or a unique prefix of at least 4 hex digits;
* ``COURSE`` or ``COURSE@latest``: the course's newest snapshot;
* ``COURSE@~N``: N snapshots before the newest;
* ``COURSE@<ISO 8601 time>``: the newest at or before that time.

Every snapshot is a complete tree, so any selector costs the same to use.
"""

from __future__ import annotations

import re

from coursevault.errors import BadInputError, SelectorError
from coursevault.history.times import parse_time
from coursevault.store.catalog import SnapshotRow
from coursevault.store.repository import Repository

_HEX = re.compile(r"^[0-9a-f]{4,64}$")


def resolve(repo: Repository, selector: str) -> SnapshotRow:
    selector = selector.strip()
    if not selector:
        raise SelectorError("empty snapshot selector")
    course, at, spec = selector.partition("@")
    rows: list[SnapshotRow] | None = None
    if not at:
        if _HEX.match(selector.lower()):
            matches = repo.catalog.snapshots_by_prefix(selector.lower())
            if len(matches) > 1:
                raise SelectorError(f"snapshot prefix {selector!r} is ambiguous (2 or more match)")
            rows = repo.snapshots(course)
            if matches and rows:  # a course key of hex digits that is also an id prefix
                raise SelectorError(
                    f"{selector!r} is both a course and the start of snapshot "
                    f"{matches[0].id[:12]}: write {selector}@latest or more of the id"
                )
            if matches:
                return matches[0]
        spec = "latest"
    if rows is None:
        rows = repo.snapshots(course)
    if not rows:
        hint = ""
        if not at and re.fullmatch(r"[0-9a-fA-F]{1,3}", selector):
            hint = " (an id prefix needs 4 hex digits or more)"
        raise SelectorError(f"no snapshot matches {selector!r}{hint}")
    if spec == "latest":
        return rows[-1]
    if spec.startswith("~"):
        try:
            back = int(spec[1:])
        except ValueError:
            raise SelectorError(f"invalid selector {selector!r}: ~N needs a number") from None
        if back < 0:
            raise SelectorError(f"invalid selector {selector!r}: ~N counts nights back, from 0 "
                                "(the latest)")
        if back >= len(rows):
            raise SelectorError(
                f"course {course!r} has {len(rows)} snapshots; {selector!r} goes back too far"
            )
        return rows[-1 - back]
    try:
        epoch = parse_time(spec)
    except BadInputError as exc:
        why = str(exc) if "out of range" in str(exc) else "expected latest, ~N or an ISO time"
        raise SelectorError(f"invalid selector {selector!r}: {why}") from None
    # a time as printed (whole seconds) takes in all of its second: a
    # database backup's time has a fraction, and the time `snapshots`
    # printed for it named none
    limit = epoch if "." in spec else epoch + 1
    before = [s for s in rows if s.epoch < limit or s.epoch == epoch]
    if not before:
        raise SelectorError(f"course {course!r} has no snapshot at or before {spec}")
    return before[-1]
