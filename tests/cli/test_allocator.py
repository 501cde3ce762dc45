"""The allocator thresholds of a backup and a restore (coursevault/allocator.py)."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from coursevault import allocator


def _glibc() -> bool:
    return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_thresholds_are_set_under_glibc() -> None:
    assert allocator.for_backup() is True
    assert allocator.for_restore() is True


def test_only_a_backup_sets_them() -> None:
    """``run`` sets them for ``backup``; another command leaves glibc alone."""
    code = (
        "import sys\n"
        "from coursevault import allocator\nfrom coursevault.cli import app\n"
        "calls = []\n"
        "allocator.for_backup = lambda: calls.append(1) or True\n"
        "app.main = lambda: 0\n"
        "try:\n    app.run()\nexcept SystemExit:\n    pass\n"
        "print(len(calls))\n"
    )
    for args, want in ((["backup", "--help"], "1"), (["snapshots"], "0")):
        out = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == want


def test_a_trimmer_hands_pages_back_every_so_many_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(allocator, "_malloc_trim", lambda: calls.append)
    trimmer = allocator.Trimmer(100)
    for size in (40, 40, 19):
        trimmer.add(size)
    assert calls == []  # 99 bytes: not yet
    trimmer.add(1)
    trimmer.add(250)
    assert calls == [0, 0]  # at 100, then at 250 more (not once per 100 of it)
    trimmer.trim()
    assert calls == [0, 0, 0]


def test_a_trimmer_trims_under_glibc_and_does_nothing_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (allocator.Trimmer(1)._trim is not None) is _glibc()
    allocator.Trimmer(1).add(5)  # a real malloc_trim(0), or nothing
    monkeypatch.setattr(sys, "platform", "darwin")
    assert allocator.Trimmer(1)._trim is None
