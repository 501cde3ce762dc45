"""How fast is this machine right now?  A fixed CPU-bound task to print beside
benchmark figures, since shared machines slow down and speed up by 2x.

``.venv/bin/python benchmarks/calibrate.py`` parses 50 MB of generated XML
with expat and compresses it with zstd level 3, three times, and prints the
best CPU seconds of each; on the project's machine when quiet: see
docs/benchmarks.md.
"""

from __future__ import annotations

import time
from xml.parsers import expat

import zstandard


def sample(mb: int = 50) -> bytes:
    rows = []
    i = 0
    size = 0
    while size < mb * 1_000_000:
        row = (
            f'<post id="{i}"><discussion>{i % 97}</discussion><userid>{i % 1013}</userid>'
            f"<message>post number {i} about section {i % 13} and quiz {i % 7}</message></post>\n"
        )
        rows.append(row)
        size += len(row)
        i += 1
    return ("<posts>\n" + "".join(rows) + "</posts>\n").encode()


def best(fn, data: bytes) -> float:
    times = []
    for _ in range(3):
        t = time.process_time()
        fn(data)
        times.append(time.process_time() - t)
    return min(times)


def measure() -> str:
    """The yardstick as one line (other benchmarks print it beside their figures)."""
    data = sample()
    parse = best(lambda d: expat.ParserCreate().Parse(d, True), data)
    cctx = zstandard.ZstdCompressor(level=3)
    comp = best(lambda d: cctx.compress(d), data)
    return f"expat {parse:.3f} s, zstd-3 {comp:.3f} s for {len(data) / 1e6:.0f} MB"


def main() -> None:
    print(measure())


if __name__ == "__main__":
    main()
