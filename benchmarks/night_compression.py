"""How much smaller could a night's new objects be?  Compression options measured
on a real repository's history.

For every snapshot after the first (in time order), the objects its ingest
added are the objects of the packs that ingest wrote (found through the pack
holding the snapshot's root).  They are compressed in 128 KiB blocks as the
store does (zstd 3), and the same bytes:

* at zstd levels 9 and 19;
* with a 110 KB dictionary trained on the first snapshot's small objects;
* with the raw bytes of the three previous nights' new objects (last 512 KB)
  as a raw-content dictionary -- what a codec naming earlier objects as its
  dictionary could reach.

Also reported: how many of the new bytes are 32-byte ids (tree references),
which no compression shrinks, and the index bytes (40 an object) on top.

    .venv/bin/python benchmarks/night_compression.py REPO [--cache DIR]

e.g. on the repository ``benchmarks/dedup_bench.py`` leaves in
/tmp/cv-dedup/sample24/coursevault/repo (cache .../coursevault/cache).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import zstandard

from coursevault import api
from coursevault.store.ids import ObjectType
from coursevault.store.treecodec import decode_tree

BLOCK = 128 * 1024


def blocks_size(payloads: Sequence[bytes], cctx: zstandard.ZstdCompressor) -> int:
    out, buf = 0, bytearray()
    for p in payloads:
        if buf and len(buf) + len(p) > BLOCK:
            out += len(cctx.compress(bytes(buf)))
            buf = bytearray()
        buf += p
    if buf:
        out += len(cctx.compress(bytes(buf)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args(argv)
    repo = api.open_repository(str(args.repo), cache_dir=str(args.cache) if args.cache else None)
    by_pack: dict[bytes, list] = defaultdict(list)
    for oid, loc in repo.catalog.iter_objects():
        by_pack[loc.pack].append((oid, loc))
    snaps = sorted(repo.snapshots(), key=lambda s: s.epoch)
    nights: list[list[bytes]] = []
    ids_bytes: list[int] = []
    counts: list[int] = []
    seen: set[bytes] = set()
    for snap in snaps:
        root = repo.catalog.lookup(bytes.fromhex(snap.root))
        if root is None or root.pack in seen:
            nights.append([])
            ids_bytes.append(0)
            counts.append(0)
            continue
        seen.add(root.pack)
        objs = sorted(by_pack[root.pack], key=lambda e: (e[1].block_offset, e[1].offset))
        payloads, refs = [], 0
        for oid, _loc in objs:
            kind, payload = repo.get(oid)
            payloads.append(payload)
            if kind == ObjectType.TREE:
                refs += 32 * len(decode_tree(payload)[0])
        nights.append(payloads)
        ids_bytes.append(refs)
        counts.append(len(objs))
    if len(nights) < 5:
        print("need at least 5 snapshots", file=sys.stderr)
        return 2
    first_small = [p for p in nights[0] if len(p) < 16384]
    trained = zstandard.train_dictionary(110_000, first_small, level=3)
    totals: dict[str, int] = defaultdict(int)
    for i in range(4, len(nights)):
        ps = nights[i]
        if not ps:
            continue
        prev = b"".join(b"".join(nights[j]) for j in range(i - 3, i))[-512 * 1024 :]
        raw = zstandard.ZstdCompressionDict(prev, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        totals["raw bytes"] += sum(map(len, ps))
        totals["id bytes in trees"] += ids_bytes[i]
        totals["index bytes (40 an object)"] += 40 * counts[i]
        totals["zstd 3 (as stored)"] += blocks_size(ps, zstandard.ZstdCompressor(level=3))
        totals["zstd 9"] += blocks_size(ps, zstandard.ZstdCompressor(level=9))
        totals["zstd 19"] += blocks_size(ps, zstandard.ZstdCompressor(level=19))
        totals["zstd 3 + trained 110 KB dictionary"] += blocks_size(
            ps, zstandard.ZstdCompressor(level=3, dict_data=trained)
        )
        totals["zstd 3 + 3 earlier nights' new objects"] += blocks_size(
            ps, zstandard.ZstdCompressor(level=3, dict_data=raw)
        )
    base = totals["zstd 3 (as stored)"]
    print(f"{args.repo}: nights 5..{len(nights)} of {len(nights)}")
    print("| measure | bytes | vs zstd 3 as stored |")
    print("|---|--:|--:|")
    for name, value in totals.items():
        print(f"| {name} | {value:,} | {value / base:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
