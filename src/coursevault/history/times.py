"""Times as users write them and as snapshots record them.

One module for both directions, below ingest and the selectors alike: a
selector's ``COURSE@<time>`` and ingest's ``--time`` must read the same text
as the same instant, and the history package must not import ingest (the
archive reader) to parse a date.
"""

from __future__ import annotations

import datetime as dt

from coursevault.errors import BadInputError

# The times a snapshot may have: Moodle's (epoch seconds, never negative) up
# to the last second a four-digit year writes, so that every one formats
# and parses back as itself.
FIRST_TIME = 0
LAST_TIME = 253402300799  # 9999-12-31T23:59:59Z


def parse_time(text: str) -> float:
    """ISO 8601 -> epoch seconds; a time without zone is UTC."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        epoch = when.timestamp()
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00+01:00 is year 0
        raise BadInputError(f"invalid time {text!r}: use ISO 8601, e.g. 2026-11-20T14:00") from None
    check_time(epoch, repr(text))
    return epoch


def check_time(epoch: float, what: str) -> None:
    """Refuse a time outside 1970-01-01 .. 9999-12-31 (UTC), naming ``what``."""
    if not FIRST_TIME <= epoch <= LAST_TIME:
        raise BadInputError(f"time {what} is out of range: 1970-01-01 to 9999-12-31 (UTC)")


def format_time(epoch: float) -> str:
    """Epoch seconds -> the UTC ISO 8601 text a snapshot record keeps."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
