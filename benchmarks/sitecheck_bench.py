"""What the schema check costs a backup run (moodledb/sitecheck.py).

    .venv/bin/python benchmarks/sitecheck_bench.py URL [URL ...] [--rounds 11]

For each Moodle database URL: ``check_columns`` timed inside a read
transaction, ``--rounds`` times in one process; prints median and minimum.
The reference site's URLs come from ``eval "$(bash scripts/refsite)"``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from coursevault.moodledb.site import open_engine, read_transaction
from coursevault.moodledb.sitecheck import check_columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--prefix", default="mdl_")
    args = parser.parse_args()
    for url in args.urls:
        engine = open_engine(url)
        times = []
        try:
            for _ in range(args.rounds):
                with read_transaction(engine, args.prefix) as reader:
                    started = time.perf_counter()
                    check_columns(reader.conn, args.prefix, url)
                    times.append(time.perf_counter() - started)
        finally:
            engine.dispose()
        print(f"{engine.url.get_backend_name():<10} median {statistics.median(times) * 1000:6.1f} ms"
              f"  min {min(times) * 1000:6.1f} ms  ({args.rounds} rounds)")


if __name__ == "__main__":
    main()
