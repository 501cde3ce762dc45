"""The local cache of walk dictionaries never makes check and export
disagree (an adversarial pass): an export run while an index file was
missing kept a walk dictionary read without the trees that file indexes;
with the file back, ``check --read-data`` passed and every export of the
course failed ("block ... is corrupt") until the cache was deleted by hand.
A walk that meets ids the index lacks is not kept now; and a copy whose
blocks do not decode (kept by an older version) is dropped where it fails,
and the block read again with the repository's own."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import CORPUS_DIR

SQ = "mod_studentquiz_tests_fixtures_backup-moodle2-aggregated-{}.mbz"
NIGHTS = ("before", "during-0", "during-1")
# a second course, whose first night shares objects with the first's: its
# walk dictionary reads trees indexed by the first course's index file
CERT = ("mod_simplecertificate_tests_other_backup-test-course-for-moodle2.3-and-above.mbz",
        "mod_simplecertificate_tests_other_backup-test-course-for-moodle3.1-and-above-fixed.mbz")


@pytest.fixture
def three_nights(cv: Callable[..., Any], tmp_path: Path) -> tuple[Path, list[str]]:
    repo = tmp_path / "repo"
    assert cv("init", repo).code == 0
    for day, night in enumerate(NIGHTS, 1):
        r = cv("-r", repo, "ingest", "--course", "sq", "--time", f"2026-01-0{day}T00:00Z",
               CORPUS_DIR / SQ.format(night))
        assert r.code == 0, r
    for day, archive in enumerate(CERT, 1):
        r = cv("-r", repo, "ingest", "--course", "cert", "--time", f"2026-01-0{day}T00:00Z",
               CORPUS_DIR / archive)
        assert r.code == 0, r
    snaps = json.loads(cv("-r", repo, "snapshots", "--json").out)
    return repo, [s["id"] for s in snaps]


def test_a_walk_read_while_an_index_file_is_missing_is_not_kept(
    cv: Callable[..., Any], tmp_path: Path, three_nights: tuple[Path, list[str]]
) -> None:
    repo, snaps = three_nights
    out = tmp_path / "x.mbz"
    for index in sorted((repo / "index").iterdir()):  # each file of the three nights' in turn
        index.rename(tmp_path / "index.saved")
        shutil.rmtree(tmp_path / "cache")  # a cold cache: its catalog built without the file
        for snap in snaps:
            cv("-r", repo, "export", snap, "-o", out)  # fails or not: a walk lacks trees
        (tmp_path / "index.saved").rename(index)
        assert cv("-r", repo, "check", "--read-data").code == 0
        for snap in snaps:
            r = cv("-r", repo, "export", snap, "-o", out)
            assert r.code == 0, (index.name, r)
            assert "did not read" not in r.err  # never kept: not dropped where it failed


def test_a_cached_walk_that_does_not_read_the_blocks_is_dropped(
    cv: Callable[..., Any], tmp_path: Path, three_nights: tuple[Path, list[str]]
) -> None:
    from coursevault.store.dictcache import DictionaryCache
    from coursevault.store.ids import ObjectId

    repo, snaps = three_nights
    out = tmp_path / "x.mbz"
    for snap in snaps:
        assert cv("-r", repo, "export", snap, "-o", out).code == 0
    cached = list((tmp_path / "cache").glob("*/dictionaries/[0-9a-f]*"))
    assert cached, "no walk dictionary was kept"
    sound = {}
    for path in cached:
        cache = DictionaryCache(path.parent)
        oid = ObjectId(bytes.fromhex(path.name))
        sound[path] = depth, content = cache.get(oid)  # type: ignore[misc]
        cache.put(oid, depth, content[: len(content) // 2])  # an older version's wrong copy
    said = []
    for snap in snaps:
        r = cv("-r", repo, "export", snap, "-o", out)
        assert r.code == 0, r
        said.append(r.err.count("the local cache's copy did not read"))
    assert sum(said) == len(cached), said  # each dropped once, where it first failed
    for path, kept in sound.items():  # dropped, then kept again as the repository reads it
        assert DictionaryCache(path.parent).get(ObjectId(bytes.fromhex(path.name))) == kept
    assert cv("-r", repo, "check", "--read-data").code == 0
