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

import coursevault.definitions.restore_activity as restore_activity
import coursevault.definitions.restore_plan as restore_plan


def peak_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


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
    n = len(marks)
    points = sorted({max(1, round(n * f)) for f in (0.1, 0.25, 0.5, 0.75, 1.0)}) if n else []
    shown = ", ".join(f"{p}: {marks[p - 1]:.1f}" for p in points)
    print(f"activities {n}; VmHWM (MiB) after activity {shown}; end {peak_mib():.1f}",
          file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
