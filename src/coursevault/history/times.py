"""Times as users write them and as snapshots record them.

One module for both directions, below ingest and the selectors alike: a
selector's ``COURSE@<time>`` and ingest's ``--time`` must read the same text
as the same instant, and the history package must not import ingest (the
archive reader) to parse a date.
"""

from __future__ import annotations

import datetime as dt

from coursevault.errors import BadInputError


def parse_time(text: str) -> float:
    """ISO 8601 -> epoch seconds; a time without zone is UTC."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInputError(f"invalid time {text!r}: use ISO 8601, e.g. 2026-11-20T14:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def format_time(epoch: float) -> str:
    """Epoch seconds -> the UTC ISO 8601 text a snapshot record keeps."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
