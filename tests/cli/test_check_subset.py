"""check --read-data-subset: some packs read a night, all of them over T nights.

A big repository (an S3 bucket) read whole every night costs hours and
egress; restic's answer, taken here with its syntax, is to read the N-th of
T groups of packs each night, or a random share.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import CORPUS_DIR

from coursevault.store.pack import BLOCK_HEAD, ENTRY, iter_blocks

COURSE = CORPUS_DIR / "moodle2cc_sample_course_24.mbz"  # 6.6 MB: a dozen 1 MiB packs


def _damage_a_data_pack(repo: Path, cv: Callable[..., Any]) -> Path:
    """Flip a byte inside a block of a pack that only ``--read-data`` reads
    (its objects are file contents no structural check decodes)."""
    for pack in sorted(p for p in (repo / "packs").rglob("*") if p.is_file()):
        original = pack.read_bytes()
        data = bytearray(original)
        boff, _blen = next(iter(iter_blocks(original)))
        n = BLOCK_HEAD.unpack_from(data, boff)[4]
        data[boff + BLOCK_HEAD.size + n * ENTRY.size + 40] ^= 0xFF
        pack.write_bytes(bytes(data))
        if cv("-r", repo, "check").code == 0:
            return pack
        pack.write_bytes(original)
    raise AssertionError("no pack whose damage only --read-data finds")


def _report(result: Any) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(result.out)
    return report


def test_groups_cover_every_pack_once_and_find_the_damaged_one(
    tmp_path: Path, cv: Callable[..., Any]
) -> None:
    repo = tmp_path / "repo"
    assert cv("init", repo, "--pack-size", "1", "--block-size", "64").code == 0
    assert cv("-r", repo, "ingest", COURSE).code == 0
    damaged = _damage_a_data_pack(repo, cv)
    group = int(damaged.name[:8], 16) % 3 + 1

    reports = {}
    for n in (1, 2, 3):
        result = cv("-r", repo, "check", "--read-data-subset", f"{n}/3", "--json")
        reports[n] = _report(result)
        assert result.code == (1 if n == group else 0), (n, result)
    packs = reports[1]["packs"]
    assert packs >= 6
    assert sum(r["packs_read"] for r in reports.values()) == packs
    assert all(r["packs_read"] < packs for r in reports.values())
    assert sum(r["bytes_read"] for r in reports.values()) == sum(
        p.stat().st_size for p in (repo / "packs").rglob("*") if p.is_file()
    )
    errors = [p["message"] for p in reports[group]["problems"] if p["severity"] == "error"]
    assert errors and all(damaged.name in m for m in errors), errors

    whole = cv("-r", repo, "check", "--read-data-subset", "100%", "--json")
    assert whole.code == 1 and _report(whole)["packs_read"] == packs
    one = cv("-r", repo, "check", "--read-data-subset", "1%")
    assert f"(1 of {packs} packs)" in one.out, one
    said = cv("-r", repo, "check", "--read-data-subset", f"{group}/3")
    assert said.code == 1 and damaged.name in said.err


@pytest.mark.parametrize("value", ["0/7", "8/7", "3", "1/0", "0%", "101%", "abc", "-1/2"])
def test_a_subset_that_is_none_is_refused_before_the_repository_opens(
    value: str, tmp_path: Path, cv: Callable[..., Any]
) -> None:
    result = cv("-r", tmp_path / "no-repo", "check", "--read-data-subset", value)
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert "--read-data-subset" in result.err and ("N/T" in result.err or "share" in result.err)
