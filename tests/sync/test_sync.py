"""sync SRC DST: what crosses, what it leaves at the destination, and what
it refuses (issue 24, "Sync").  Real corpus courses with nights of change."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sync_sites import Sites

from coursevault import api
from coursevault.errors import EXIT_BAD_INPUT, EXIT_FAILURE, RepositoryError
from coursevault.store.replicate import init_like
from coursevault.store.repository import Repository


def _site(sites: Sites, nights: dict[str, list[Path]], courses: dict[str, int]) -> str:
    """A source repository holding the first n nights of each course."""
    return sites.seeded("src", nights, courses)


def _stored_bytes(location: str) -> int:
    """Bytes of packs, index files and snapshots (what a night adds)."""
    backend = api.backend_for(location)
    return sum(size for p in ("packs/", "index/", "snapshots/") for _k, size in backend.list(p))


def _files(location: str) -> dict[str, bytes]:
    backend = api.backend_for(location)
    return {key: backend.read(key) for key, _size in backend.list("")}


def test_full_sync_copies_every_snapshot_exactly(
    sites: Sites, nights: dict[str, list[Path]]
) -> None:
    src = _site(sites, nights, {"cert": 2, "upload": 2, "quiz": 1})
    dst = sites.destination("dst")
    report = sites.sync(src, dst)
    assert report.initialized and report.snapshots == 5
    assert report.objects > 0 and report.bytes > 0 and report.requests > 0
    # a journal, as init starts one: else every command lists index/ and snapshots/
    assert "journal/checkpoint" in {key for key, _ in api.backend_for(dst).list("journal/")}
    # every source pack is wanted whole: one crosses as it is, under its
    # name, unless a block of it must wait for its dictionary (then repacked)
    packs = {key for key, _size in api.backend_for(src).list("packs/")}
    copied = {key for key, _size in api.backend_for(dst).list("packs/")}
    assert len(packs) - 1 <= report.packs_whole == len(copied & packs)
    if src.startswith("s3://"):  # read whole, several at once, into its disk cache first
        with sites.open(src) as source:
            cached = Path(sites.cache, source.id, "objects")
        assert {p.relative_to(cached).as_posix() for p in cached.glob("packs/*/*")} >= packs
    assert sites.snapshots(dst) == sites.snapshots(src)  # the same ids
    sites.check(dst)
    assert sites.exports(dst) == sites.exports(src)
    again = sites.sync(src, dst)
    assert (again.snapshots, again.objects, again.bytes) == (0, 0, 0)


def test_course_sync_copies_that_course_only(sites: Sites, nights: dict[str, list[Path]]) -> None:
    src = _site(sites, nights, {"cert": 2, "upload": 2})
    dst = sites.destination("dst")
    assert sites.cli("sync", src, dst, "--course", "upload", "--json", "--jobs", "1") == 0
    assert set(sites.snapshots(dst).values()) == {"upload"}
    sites.check(dst)
    exported = sites.exports(dst)
    assert exported == {k: v for k, v in sites.exports(src).items() if k in exported}
    # then the other course: the objects they share do not cross again
    report = sites.sync(src, dst, courses=["cert"])
    assert report.snapshots == 2
    assert sites.snapshots(dst) == sites.snapshots(src)
    sites.check(dst)


def test_night_sync_copies_only_what_the_night_added(
    sites: Sites, nights: dict[str, list[Path]]
) -> None:
    src = _site(sites, nights, {"cert": 2, "upload": 2, "quiz": 2})
    dst = sites.destination("dst")
    sites.sync(src, dst)
    with sites.open(src) as repo:
        objects_before = repo.catalog.count_objects()
    bytes_before = _stored_bytes(src)
    sites.ingest(src, nights["cert"][2], "cert")
    with sites.open(src) as repo:
        added_objects = repo.catalog.count_objects() - objects_before
    added_bytes = _stored_bytes(src) - bytes_before
    report = sites.sync(src, dst, courses=["cert"])
    assert report.snapshots == 1
    assert report.objects == added_objects  # every new object, and nothing else
    assert report.objects_repacked == 0  # whole blocks, compressed as the night stored them
    assert report.bytes <= 1.2 * added_bytes
    sites.check(dst)
    assert sites.exports(dst) == sites.exports(src)


def test_objects_not_files_a_pack_partly_there_sends_only_what_is_missing(
    sites: Sites, nights: dict[str, list[Path]]
) -> None:
    """Site B stored night 2 of a course as its own first night; A holds
    nights 1 and 2.  Synced after B, A's night-1 blocks are partly at the
    destination: only their missing objects cross, repacked."""
    a = _site(sites, nights, {"cert": 2})
    b = sites.init(sites.source("b"))
    sites.ingest(b, nights["cert"][1], "cert-b")
    dst = sites.destination("dst")
    sites.sync(b, dst)
    with sites.open(a) as repo:
        total = repo.catalog.count_objects()
    report = sites.sync(a, dst)
    assert report.objects_repacked > 0
    assert report.objects < total
    with sites.open(dst) as repo:
        assert repo.catalog.count_objects() >= total
    sites.check(dst)
    assert set(sites.snapshots(dst)) == set(sites.snapshots(a)) | set(sites.snapshots(b))
    exported = sites.exports(dst)
    for site in (a, b):
        for snap, data in sites.exports(site).items():
            assert exported[snap] == data


def test_dry_run_writes_nothing(sites: Sites, nights: dict[str, list[Path]]) -> None:
    src = _site(sites, nights, {"upload": 2, "quiz": 1})
    dst = sites.destination("dst")
    report = sites.sync(src, dst, dry_run=True)  # no repository there yet
    assert report.dry_run and report.snapshots == 3 and report.objects > 0
    assert _files(dst) == {}
    real = sites.sync(src, dst, courses=["quiz"])
    before = _files(dst)
    dry = sites.sync(src, dst, dry_run=True)
    assert _files(dst) == before
    assert dry.snapshots == 2
    full = sites.sync(src, dst)
    assert (full.objects, full.snapshots) == (dry.objects, dry.snapshots)
    assert full.bytes == dry.bytes
    assert real.objects > 0


def test_incompatible_destination_is_refused(sites: Sites, nights: dict[str, list[Path]]) -> None:
    src = _site(sites, nights, {"quiz": 1})
    other = sites.destination("other")
    Repository.init(api.backend_for(other), dictionary_depth=2)
    assert sites.cli("sync", src, other) == EXIT_BAD_INPUT
    assert sites.snapshots(other) == {}
    cut = sites.destination("cut")
    with sites.open(src) as repo:
        chunker = {"min": 4096, "avg": 16384, "max": 65536}
        init_like(api.backend_for(cut), {**repo.config, "chunker": chunker})
    assert sites.cli("sync", src, cut) == EXIT_BAD_INPUT
    assert sites.snapshots(cut) == {}
    assert sites.cli("sync", src, src) == EXIT_BAD_INPUT  # itself


def test_json_report_and_errors_are_one_line(
    sites: Sites, nights: dict[str, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    src = _site(sites, nights, {"quiz": 1})
    dst = sites.destination("dst")
    capsys.readouterr()
    assert sites.cli("sync", src, dst, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert {"objects", "bytes", "requests", "snapshots"} <= set(report)
    assert report["snapshots"] == 1
    assert sites.cli("sync", src, dst, "--course", "nosuch") == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nosuch" in err
    # refused before the destination is made: nothing is written
    fresh = sites.destination("fresh")
    assert sites.cli("sync", src, fresh, "--course", "nosuch") == EXIT_BAD_INPUT
    capsys.readouterr()
    assert list(api.backend_for(fresh).list("")) == []
    assert sites.cli("sync", src, dst, "--jobs", "0") == EXIT_BAD_INPUT
    assert "--jobs" in capsys.readouterr().err
    # each job holds packs of up to the pack size in memory: a thousand
    # would be 16 GiB of default packs, and as many threads
    assert sites.cli("sync", src, dst, "--jobs", "1000") == EXIT_BAD_INPUT
    assert "--jobs" in capsys.readouterr().err
    assert sites.cli("sync", os.fspath(Path(src).parent / "absent"), dst) != 0
    assert EXIT_FAILURE == 1


def test_a_snapshot_forgotten_and_pruned_at_the_destination_comes_back_whole(
    sites: Sites, nights: dict[str, list[Path]]
) -> None:
    """A prune keeps the trees a dictionary reads without what they name:
    syncing the forgotten night again must not take them for complete."""
    src = _site(sites, nights, {"cert": 3, "upload": 3})
    dst = sites.destination("dst")
    sites.sync(src, dst)
    firsts = [
        next(s for s, k in sites.snapshots(src).items() if k == c) for c in ("cert", "upload")
    ]
    for snap in firsts:
        assert sites.cli("forget", "--snapshot", snap, "-r", dst) == 0
    assert sites.cli("prune", "-r", dst) == 0
    assert not set(firsts) & set(sites.snapshots(dst))
    report = sites.sync(src, dst)
    assert report.snapshots == 2
    assert sites.snapshots(dst) == sites.snapshots(src)
    sites.check(dst)
    assert sites.exports(dst) == sites.exports(src)


def test_a_destination_that_lost_a_pack_is_refilled(
    sites: Sites, nights: dict[str, list[Path]]
) -> None:
    """A published snapshot is taken for complete at DST: after a lost pack
    there, `repair packs` drops its objects and `--refill` copies them back."""
    src = _site(sites, nights, {"cert": 2, "upload": 1})
    dst = sites.destination("dst")
    sites.sync(src, dst)
    backend = api.backend_for(dst)
    key, _size = max(backend.list("packs/"), key=lambda entry: entry[1])
    backend.delete(key)
    assert sites.sync(src, dst).objects == 0  # nothing to copy, as far as it knows
    with pytest.raises(RepositoryError, match="repair packs"):
        sites.sync(src, dst, refill=True)
    with sites.open(dst) as repo:
        repaired = api.repair_packs(repo)
    assert repaired.missing == [key.rsplit("/", 1)[-1]] and repaired.objects_dropped > 0
    report = sites.sync(src, dst, refill=True)
    assert report.refilled == 3 and report.snapshots == 0 and report.objects > 0
    sites.check(dst)
    assert sites.exports(dst) == sites.exports(src)


def test_a_destination_catalog_already_warm_sees_what_a_sync_brought(
    sites: Sites, nights: dict[str, list[Path]], tmp_path: Path
) -> None:
    """A site's own catalog of DST reads only what DST's journal says is new
    (issue 26): a sync must journal the index files and snapshots it
    writes, or that site would not see them (nor keep their objects)."""
    src = _site(sites, nights, {"cert": 1, "upload": 1})
    dst = sites.init(sites.destination("dst"))
    sites.ingest(dst, nights["quiz"][0], "quiz")
    at_dst = str(tmp_path / "dst-site-cache")  # the destination site's own machine
    with api.open_repository(dst, cache_dir=at_dst) as repo:
        assert {r.series for r in repo.snapshots()} == {"quiz"}
    assert sites.sync(src, dst).snapshots == 2
    with api.open_repository(dst, cache_dir=at_dst) as repo:
        assert {r.series for r in repo.snapshots()} == {"quiz", "cert", "upload"}
        assert api.check(repo, read_data=True).ok


def test_a_nights_requests_do_not_grow_with_the_repository(
    sites: Sites, nights: dict[str, list[Path]]
) -> None:
    """The same night of one course synced from a source of that course
    alone and from one of 9 courses (26 snapshots, as many packs and index
    files): the same bytes within 1 %, requests within a few (a tree the
    night shares with another course is walked), where reading the index
    or listing the packs would cost 20 more."""
    seen = []
    many = {"cert": 2, **{f"{c}-{k}": 3 for c in ("upload", "quiz") for k in range(4)}}
    for name, courses in (("one", {"cert": 2}), ("many", many)):
        src = sites.seeded(name, nights, courses)
        dst = sites.destination(f"{name}-dst")
        sites.sync(src, dst)
        sites.ingest(src, nights["cert"][2], "cert")
        report = sites.sync(src, dst, courses=["cert"])
        seen.append(report)
    one, big = seen
    assert big.requests <= one.requests + 5
    assert abs(big.bytes - one.bytes) <= 0.01 * one.bytes
    assert big.snapshots == one.snapshots == 1
