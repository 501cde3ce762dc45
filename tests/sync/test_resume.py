"""A sync killed midway, and a source object that is not what its id says."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sync_sites import Sites

from coursevault import api
from coursevault.errors import EXIT_FAILURE
from coursevault.store.backend import Backend, LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.replicate import init_like, sync_repositories
from coursevault.store.repository import Repository
from coursevault.store.wrappers import BackendWrapper


class Killed(BaseException):
    """The process dying: no coursevault handler catches it."""


class KillAfter(BackendWrapper):
    """Dies at the ``n``-th created file whose key starts with ``prefix``."""

    def __init__(self, inner: Backend, prefix: str, n: int) -> None:
        super().__init__(inner)
        self.prefix, self.n, self.seen = prefix, n, 0

    def create(self, key: str, data: bytes) -> bool:
        if key.startswith(self.prefix):
            self.seen += 1
            if self.seen == self.n:
                raise Killed(key)
        return self.inner.create(key, data)


def _source(sites: Sites, nights: dict[str, list[Path]]) -> str:
    """A source of small packs (64 KiB): a sync writes many, and indexes as it goes."""
    return sites.seeded("src", nights, {"cert": 2, "upload": 2, "quiz": 2}, pack_size=64 * 1024)


@pytest.mark.parametrize(
    ("prefix", "n"), [("packs/", 4), ("index/", 3)], ids=["at-a-pack", "before-an-index"]
)
@pytest.mark.parametrize(
    "sites",
    [("folder", "folder"), ("s3", "s3")],
    indirect=True,
    ids=["folder-to-folder", "s3-to-s3"],
)
def test_rerun_after_a_kill_copies_only_what_is_missing(
    sites: Sites, nights: dict[str, list[Path]], prefix: str, n: int
) -> None:
    src = _source(sites, nights)
    clean = sites.sync(src, sites.destination("clean"))
    assert clean.packs > n  # the kill is midway

    dst = sites.destination("dst")
    backend = KillAfter(api.backend_for(dst), prefix, n)
    with sites.open(src) as source:
        init_like(backend, source.config)
        with Repository.open(backend, cache_dir=sites.cache) as target, pytest.raises(Killed):
            sync_repositories(source, target)
    assert sites.snapshots(dst) == {}  # snapshots come last
    sites.check(dst)  # unindexed packs at most: warnings, no errors
    with sites.open(dst) as target:
        indexed = target.catalog.count_objects()
    assert indexed > 0  # what was indexed before the kill stays

    rerun = sites.sync(src, dst)
    assert rerun.objects + indexed <= clean.objects  # nothing copied twice...
    assert rerun.objects < clean.objects  # ...and less than a whole sync
    if prefix == "index/":
        assert rerun.packs_resumed >= 1  # the pack written before the kill is not sent again
    assert sites.snapshots(dst) == sites.snapshots(src)
    sites.check(dst)
    assert sites.exports(dst) == sites.exports(src)


def _newest_pack(location: str) -> Path:
    packs = sorted(Path(location, "packs").rglob("*"), key=lambda p: p.stat().st_mtime_ns)
    return [p for p in packs if p.is_file()][-1]


# these damage a pack file in place: a folder source, into either kind
@pytest.mark.parametrize("sites", [("folder", "folder"), ("folder", "s3")], indirect=True,
                         ids=["folder-to-folder", "folder-to-s3"])
def test_a_damaged_source_object_is_refused_and_nothing_names_it(
    sites: Sites, nights: dict[str, list[Path]]
) -> None:
    src = sites.init(sites.source("src"))
    sites.ingest(src, nights["quiz"][0], "quiz")
    sites.ingest(src, nights["upload"][0], "upload")
    sites.ingest(src, nights["upload"][1], "upload")
    assert isinstance(api.backend_for(src), LocalBackend)
    pack = _newest_pack(src)  # upload's night 2
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x40
    pack.write_bytes(bytes(data))

    dst = sites.destination("dst")
    assert sites.cli("sync", src, dst) == EXIT_FAILURE
    assert sites.snapshots(dst) == {}
    sites.check(dst)
    # what does not need the damaged object still syncs
    assert sites.cli("sync", src, dst, "--course", "quiz") == 0
    assert set(sites.snapshots(dst).values()) == {"quiz"}
    sites.check(dst)


@pytest.mark.parametrize("sites", [("folder", "folder"), ("folder", "s3")], indirect=True,
                         ids=["folder-to-folder", "folder-to-s3"])
def test_an_object_that_does_not_hash_to_its_id_is_refused(
    sites: Sites, write_course: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A file content stored raw (incompressible): one flipped byte decodes
    fine and only its id gives it away."""
    src = sites.init(sites.source("src"))
    assert isinstance(api.backend_for(src), LocalBackend)
    content = os.urandom(300_000)
    archive = write_course(
        sites.tmp / "course.mbz", {1: [(1, "hello")]}, extra=[("files/ab/abcdef", content)]
    )
    sites.ingest(src, archive, "course")
    pack = _newest_pack(src)
    data = pack.read_bytes()
    at = data.index(content[1000:1100])
    pack.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])

    dst = sites.destination("dst")
    capsys.readouterr()
    assert sites.cli("sync", src, dst) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "corrupt" in err and "nothing that names it was copied" in err, err
    assert sites.snapshots(dst) == {}
    sites.check(dst)


@pytest.mark.parametrize("sites", [("folder", "folder")], indirect=True, ids=["folder-to-folder"])
def test_a_sync_killed_before_its_snapshots_are_journaled_copies_them_on_rerun(
    sites: Sites, nights: dict[str, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between writing the snapshot files and journaling them, a sync
    had already put them in its catalog: the rerun copied 0 snapshots, check
    failed and every other catalog never saw them."""
    from coursevault.store import series

    src = _source(sites, nights)
    dst = sites.destination("dst")

    def killed(*_args: object, **_kwargs: object) -> None:
        raise Killed("journal")

    with monkeypatch.context() as patch:
        patch.setattr(series, "journal_files", killed)
        with sites.open(src) as source:
            init_like(api.backend_for(dst), source.config)
            with (
                Repository.open(api.backend_for(dst), cache_dir=sites.cache) as target,
                pytest.raises(Killed),
            ):
                sync_repositories(source, target)
    for lock in Path(dst, "locks").iterdir():  # the dead process's lock
        lock.unlink()
    rerun = sites.sync(src, dst)
    assert rerun.snapshots > 0
    assert sites.snapshots(dst) == sites.snapshots(src)
    sites.check(dst)
    assert sites.exports(dst) == sites.exports(src)


@pytest.mark.parametrize("sites", [("folder", "folder")], indirect=True, ids=["folder-to-folder"])
def test_a_sync_killed_before_the_new_destination_s_journal_leaves_one_after_the_rerun(
    sites: Sites, nights: dict[str, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between the destination's config and its first journal
    checkpoint, the rerun took it for a repository from before the journal:
    check warned 'no journal' of a repository sync had just made."""
    from coursevault.store import replicate

    src = _source(sites, nights)
    dst = sites.destination("dst")

    def killed(*_args: object, **_kwargs: object) -> None:
        raise Killed("checkpoint")

    with monkeypatch.context() as patch:
        patch.setattr(replicate, "write_checkpoint", killed)
        with pytest.raises(Killed):
            sites.sync(src, dst)
    from coursevault.store.journal import read_pointer

    sites.sync(src, dst, dry_run=True)  # writes nothing, a journal neither
    assert read_pointer(api.backend_for(dst)) is None
    sites.sync(src, dst)
    with sites.open(dst) as target:
        report = check_repository(target)
    assert report.ok and not [p.message for p in report.problems if "journal" in p.message]
    assert sites.snapshots(dst) == sites.snapshots(src)


@pytest.mark.parametrize("sites", [("folder", "folder")], indirect=True, ids=["folder-to-folder"])
def test_a_failed_sync_reports_its_failure_not_the_lock_release_s(
    sites: Sites, nights: dict[str, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An S3 service going down mid-sync failed the locks' release as well,
    and the error named 'DeleteObject locks/...', not the request that
    failed."""
    from coursevault.errors import BackendError
    from coursevault.store import replicate
    from coursevault.store.locks import Lock

    src = _source(sites, nights)
    dst = sites.destination("dst")
    sites.sync(src, dst)

    def failing(*_args: object, **_kwargs: object) -> None:
        raise BackendError("S3 GetObject refs/heads/x: the real failure")

    def release_fails(_self: Lock) -> None:
        raise BackendError("S3 DeleteObject locks/x: connection refused")

    monkeypatch.setattr(replicate, "_sync", failing)
    monkeypatch.setattr(Lock, "release", release_fails)
    with sites.open(src) as source, sites.open(dst) as target:
        with pytest.raises(BackendError, match="the real failure"):
            sync_repositories(source, target)
        monkeypatch.undo()


@pytest.mark.parametrize("sites", [("folder", "folder")], indirect=True, ids=["folder-to-folder"])
@pytest.mark.parametrize("cold", [False, True], ids=["catalog-warm", "catalog-cold"])
@pytest.mark.parametrize("which", [0, 1], ids=["older", "newest"])
def test_a_damaged_source_record_is_left_behind_with_exit_1(
    sites: Sites, nights: dict[str, list[Path]], capsys: pytest.CaptureFixture[str], cold: bool,
    which: int,
) -> None:
    """A snapshot record damaged at the source: the rest is copied, that one
    is named and the sync exits 1 -- it exited 0 (catalog cold) or copied
    nothing (warm); ``--course`` of its course said "no snapshots", exit 2.
    Cold, the record does not parse: its course's ref (the newest) or its
    child's parent (an older one) names it."""
    src = sites.init(sites.source("src"))
    sites.ingest(src, nights["quiz"][0], "quiz")
    sites.ingest(src, nights["upload"][0], "upload")
    sites.ingest(src, nights["upload"][1], "upload")
    early = sites.destination("early")  # synced before the damage: holds it already
    assert sites.cli("sync", src, early) == 0
    with sites.open(src) as repo:
        rows = [r for r in repo.snapshots() if r.series == "upload"]
        row = rows[which]
        path = Path(src, repo.record_key(row.id))
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    if cold:
        for catalog in Path(sites.cache).rglob("catalog*"):
            catalog.unlink()
    assert sites.cli("sync", src, early) == 0  # nothing is missing there

    dst = sites.destination("dst")
    capsys.readouterr()
    assert sites.cli("sync", src, dst) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert row.id[:12] in err and "1 snapshot not copied" in err, err
    assert sorted(sites.snapshots(dst).values()) == ["quiz", "upload"]
    sites.check(dst)
    assert sites.cli("sync", src, dst, "--course", "upload") == EXIT_FAILURE
    err = capsys.readouterr().err
    assert row.id[:12] in err and "damaged" in err and "no snapshots" not in err, err
    assert sites.cli("sync", src, dst, "--course", "quiz") == 0
