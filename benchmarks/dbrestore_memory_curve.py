"""Where a ``restore --db`` reaches its peak RSS as the course goes (issue
23: "flat from S to M").

    .venv/bin/python benchmarks/dbrestore_memory_curve.py -r REPO restore SNAPSHOT \\
        --db URL --dataroot DATAROOT --json > /dev/null

Runs the CLI in this process with the activity restore wrapped, and prints
(on stderr) the process's VmHWM -- its peak RSS so far -- after 10 %, 25 %,
50 %, 75 % and all of the course's activities, and at the end.  A restore
whose memory grows with the course climbs to its last activity; one whose
memory is bounded stops climbing once its caches are full.  Restore into a
copy of the site: the restore is real.
"""

from __future__ import annotations

import sys
from typing import Any

from vmhwm import curve, peak_mib

import coursevault.definitions.restore_activity as restore_activity
import coursevault.definitions.restore_plan as restore_plan


def main() -> None:
    marks: list[float] = []
    original = restore_activity.restore_activity

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        done = original(*args, **kwargs)
        marks.append(peak_mib())
        return done

    restore_plan.restore_activity = wrapped  # type: ignore[assignment]
    from coursevault.cli.app import main as cli

    code = cli(sys.argv[1:])
    print(curve(marks, "activities"), file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
