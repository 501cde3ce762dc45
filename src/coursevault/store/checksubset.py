"""Which packs ``check --read-data-subset`` reads (restic's option and syntax).

Reading every pack each night can take longer than the night, and on S3 it
is paid for in requests and egress; a subset a night reads a big repository
whole over several nights.  Everything else ``check`` checks every time.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from coursevault.errors import UsageError


def pack_subset(text: str) -> Callable[[list[str]], list[str]]:
    """The packs ``--read-data-subset`` reads, as restic's option of that
    name picks them: ``N/T`` the N-th of T groups, by the first 4 bytes of
    each pack's id -- the groups 1..T cover every pack once, so reading group
    (day of the week)/7 each night reads the whole repository in a week --
    or ``P%`` that share of the packs, picked at random (at least one)."""
    if m := re.fullmatch(r"\s*(\d{1,9})\s*/\s*(\d{1,9})\s*", text):
        n, t = int(m[1]), int(m[2])
        if not 1 <= n <= t:
            raise UsageError(f"--read-data-subset {text}: N/T needs 1 <= N <= T")
        return lambda names: [name for name in names if int(name[:8], 16) % t == n - 1]
    if m := re.fullmatch(r"\s*(\d{1,3}(?:\.\d+)?)\s*%\s*", text):
        share = float(m[1])
        if not 0 < share <= 100:
            raise UsageError(f"--read-data-subset {text}: a share is more than 0 and at most 100%")

        def sample(names: list[str]) -> list[str]:
            count = min(len(names), max(1, round(len(names) * share / 100)))
            return sorted(random.sample(names, count))

        return sample
    raise UsageError(
        f"--read-data-subset {text!r}: give N/T (the N-th of T groups of packs, "
        "e.g. 3/7) or P% (that share of the packs at random, e.g. 10%)"
    )
