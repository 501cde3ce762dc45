"""Times as users write them and snapshots record them (history/times.py)."""

from __future__ import annotations

import pytest

from coursevault.errors import BadInputError
from coursevault.history.times import format_time, parse_time

T0 = 1700000000  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    "text", ["2023-11-14T22:13:20", "2023-11-14T22:13:20Z", "2023-11-15T00:13:20+02:00"]
)
def test_a_time_without_a_zone_is_utc(text: str) -> None:
    assert parse_time(text) == T0


def test_a_recorded_time_reads_back() -> None:
    assert format_time(T0) == "2023-11-14T22:13:20Z"
    assert parse_time(format_time(T0 + 0.5)) == T0  # recorded to the second


def test_a_time_that_is_not_iso_8601_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="invalid time 'yesterday'"):
        parse_time("yesterday")


@pytest.mark.parametrize(
    "text",
    ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "0001-01-01", "1969-12-31"],
)
def test_a_time_outside_what_a_snapshot_can_hold_is_bad_input(text: str) -> None:
    """Each parsed, then failed to become epoch seconds (an internal error)
    or became one that formats as a time no selector reads back."""
    with pytest.raises(BadInputError, match=r"out of range|invalid time"):
        parse_time(text)
    assert format_time(parse_time("9999-12-31T23:59:59Z")) == "9999-12-31T23:59:59Z"
