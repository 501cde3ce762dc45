"""forget's rules, checked against restic's documented semantics."""

from __future__ import annotations

import datetime as dt

import pytest

from coursevault.errors import UsageError
from coursevault.history.retention import Policy, apply_policy
from coursevault.store.catalog import SnapshotRow


def _rows(times: list[dt.datetime], course: str = "c") -> list[SnapshotRow]:
    return [
        SnapshotRow(f"{i:064x}", course, t.isoformat(), t.timestamp(), "00" * 32, {})
        for i, t in enumerate(times)
    ]


def _day(d: int, h: int = 2) -> dt.datetime:
    return dt.datetime(2026, 1, 1, h, tzinfo=dt.UTC) + dt.timedelta(days=d)


def test_keep_last() -> None:
    rows = _rows([_day(d) for d in range(10)])
    decision = apply_policy(rows, Policy(last=3))
    assert [s.id for s, _ in decision.keep] == [rows[9].id, rows[8].id, rows[7].id]
    assert len(decision.remove) == 7


def test_daily_keeps_newest_of_each_of_the_last_n_days() -> None:
    # two snapshots a day for 10 days
    rows = _rows([_day(d, h) for d in range(10) for h in (2, 14)])
    decision = apply_policy(rows, Policy(daily=4))
    kept = {s.time for s, _ in decision.keep}
    assert kept == {_day(d, 14).isoformat() for d in (6, 7, 8, 9)}


def test_rules_combine_and_say_why() -> None:
    rows = _rows([_day(d) for d in range(0, 90)])  # daily for 90 days, 2026-01-01..
    decision = apply_policy(rows, Policy(last=2, daily=7, weekly=4, monthly=3))
    reasons = {s.time[:10]: why for s, why in decision.keep}
    assert reasons["2026-03-31"] == ["last", "daily", "weekly", "monthly"]
    assert reasons["2026-03-30"] == ["last", "daily"]
    assert "2026-03-24" not in reasons  # outside 7 days, and not the last of its week
    assert reasons["2026-02-28"] == ["monthly"]
    assert reasons["2026-01-31"] == ["monthly"]
    # weekly: the newest (Sunday or latest) of the last 4 ISO weeks
    assert sum("weekly" in why for why in reasons.values()) == 4
    assert len(decision.keep) + len(decision.remove) == 90


def test_yearly_and_hourly() -> None:
    rows = _rows([dt.datetime(y, 6, 1, tzinfo=dt.UTC) for y in (2020, 2021, 2022, 2023)])
    assert len(apply_policy(rows, Policy(yearly=2)).keep) == 2
    hours = _rows([dt.datetime(2026, 1, 1, h, m, tzinfo=dt.UTC) for h in range(5) for m in (0, 30)])
    kept = apply_policy(hours, Policy(hourly=3)).keep
    assert [s.time[11:16] for s, _ in kept] == ["04:30", "03:30", "02:30"]


def test_empty_or_negative_policy_is_refused() -> None:
    with pytest.raises(UsageError):
        apply_policy(_rows([_day(0)]), Policy())
    with pytest.raises(UsageError):
        apply_policy(_rows([_day(0)]), Policy(last=-1))
