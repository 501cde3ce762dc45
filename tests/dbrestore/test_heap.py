"""coursevault/allocator.py: a large buffer freed does not send the next ones to
the heap (glibc's dynamic mmap threshold fixed for a restore)."""

from __future__ import annotations

import subprocess
import sys

# in a fresh interpreter: free a 1 MiB buffer, then count the buffers glibc
# serves from mmap while a 512 KiB one is alive
_PROBE = """
import ctypes, sys
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "fixed":
    from coursevault.allocator import for_restore
    assert for_restore()
first = bytearray(1 << 20)
del first
before = libc.mallinfo2().hblks
second = bytearray(512 * 1024)
print(libc.mallinfo2().hblks - before)
"""


def _mapped(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_a_freed_large_buffer_leaves_the_next_ones_mapped() -> None:
    assert _mapped("dynamic") == 0  # glibc's own rule: into the heap
    assert _mapped("fixed") == 1
