"""Where a ``backup --db`` reaches its peak RSS as the course goes (issue 21:
"peak RSS flat from S to M").

    .venv/bin/python benchmarks/dbbackup_memory_curve.py -r REPO backup \\
        --db URL --dataroot DATAROOT --course ID --json > /dev/null

Runs the CLI in this process with ingest's per-member step wrapped, and
prints (on stderr) the process's VmHWM -- its peak RSS so far -- after 10 %,
25 %, 50 %, 75 % and all of the course's archive members, and at the end
(the commit).  Members are made from the database and stored as they come,
so a backup whose memory grows with the course climbs to its last member;
one whose memory is bounded stops climbing once its buffers and caches are
full.  The restore's counterpart is ``dbrestore_memory_curve.py``.
"""

from __future__ import annotations

import sys
from typing import Any

from vmhwm import curve, peak_mib

import coursevault.snapshot.ingest as ingest


def main() -> None:
    marks: list[float] = []
    original = ingest._member_entry

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        marks.append(peak_mib())  # before the member: what the ones before it cost
        return original(*args, **kwargs)

    ingest._member_entry = wrapped  # type: ignore[assignment]
    from coursevault.cli.app import main as cli

    code = cli(sys.argv[1:])
    print(curve(marks, "members"), file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
