"""The process's peak RSS so far, and a curve of it along a command's work
(``dbbackup_memory_curve.py``, ``dbrestore_memory_curve.py``)."""

from __future__ import annotations


def peak_mib() -> float:
    """VmHWM: the peak resident set so far, in MiB (Linux only)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def curve(marks: list[float], what: str) -> str:
    """``marks`` (one peak per unit of work, in order) at 10/25/50/75/100 %
    of the units, and the peak now."""
    n = len(marks)
    points = sorted({max(1, round(n * f)) for f in (0.1, 0.25, 0.5, 0.75, 1.0)}) if n else []
    shown = ", ".join(f"{p}: {marks[p - 1]:.1f}" for p in points)
    return f"{what} {n}; VmHWM (MiB) at {shown}; end {peak_mib():.1f}"
