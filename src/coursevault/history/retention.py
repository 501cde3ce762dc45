"""Retention policies: which snapshots ``forget`` keeps (restic's rules).

Per course, snapshots are sorted newest first.  ``--keep-last N`` keeps the N
newest.  ``--keep-hourly N`` (daily, weekly, monthly, yearly alike) keeps, for
the last N hours that have snapshots, the newest snapshot of each hour.  Time
buckets are UTC; weeks are ISO weeks.  A snapshot is kept if any rule keeps it
(and the reasons are reported).  A policy with no rule is refused, as restic
refuses it, so that ``forget`` never means "forget everything" by accident.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from coursevault.errors import UsageError
from coursevault.store.catalog import SnapshotRow
from coursevault.store.series import history_order


@dataclass(frozen=True)
class Policy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def empty(self) -> bool:
        return not any((self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly))

    def check(self) -> None:
        """Refuse a policy that would forget everything by accident (no rule,
        or a negative count), whether or not there are snapshots to apply it to."""
        if self.empty():
            raise UsageError(
                "no retention rule given: use --keep-last/-hourly/-daily/-weekly/-monthly/-yearly"
            )
        for name, value in self.__dict__.items():
            if value < 0:
                raise UsageError(f"--keep-{name} must not be negative")


@dataclass
class Decision:
    keep: list[tuple[SnapshotRow, list[str]]] = field(default_factory=list)
    remove: list[SnapshotRow] = field(default_factory=list)


def _bucket(kind: str) -> Callable[[dt.datetime], tuple[int, ...]]:
    return {
        "hourly": lambda t: (t.year, t.month, t.day, t.hour),
        "daily": lambda t: (t.year, t.month, t.day),
        "weekly": lambda t: tuple(t.isocalendar()[:2]),
        "monthly": lambda t: (t.year, t.month),
        "yearly": lambda t: (t.year,),
    }[kind]


def apply_policy(snapshots: Sequence[SnapshotRow], policy: Policy) -> Decision:
    """Decide for one course's snapshots (any order), newest first in
    history order (store.series.history_order): of snapshots of one time,
    the one ingested last is the newest, as ``@latest`` says -- by id,
    ``--keep-last 1`` kept the first of them about half the time."""
    policy.check()
    newest_first = history_order(sorted(snapshots, key=lambda s: (s.epoch, s.id)))[::-1]
    reasons: dict[str, list[str]] = {s.id: [] for s in newest_first}
    for i, s in enumerate(newest_first):
        if i < policy.last:
            reasons[s.id].append("last")
    for kind in ("hourly", "daily", "weekly", "monthly", "yearly"):
        budget = getattr(policy, kind)
        if not budget:
            continue
        key = _bucket(kind)
        seen: set[tuple[int, ...]] = set()
        for s in newest_first:
            if len(seen) >= budget:
                break
            b = key(dt.datetime.fromtimestamp(s.epoch, dt.UTC))
            if b not in seen:
                seen.add(b)
                reasons[s.id].append(kind)
    decision = Decision()
    for s in newest_first:
        if reasons[s.id]:
            decision.keep.append((s, reasons[s.id]))
        else:
            decision.remove.append(s)
    return decision
