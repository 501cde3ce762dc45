"""The journal of index and snapshot names (store/journal.py): a warm sync
reads only what is new; kills, concurrent writers and damage never make a
catalog show a snapshot that is not there, nor hide one for good."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from coursevault import api
from coursevault.store import journal, series
from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.journal import (
    POINTER_KEY,
    SNAPSHOT,
    JournalDamagedError,
    append,
    decode_entry,
    gen_key,
    part_key,
    read_pointer,
    replay,
)
from coursevault.store.journal_check import JOURNAL
from coursevault.store.prune import prune_repository
from coursevault.store.repository import Repository
from coursevault.store.snapshots import snapshot_row


class CountingBackend(LocalBackend):
    """Records which prefixes are listed and how many files are read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.listed: list[str] = []
        self.reads = 0

    def list(self, prefix: str):  # type: ignore[override]
        self.listed.append(prefix)
        return super().list(prefix)

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self.reads += 1
        return super().read(key, offset, length)


def journal_gens(backend: LocalBackend) -> list[int]:
    return sorted(int(k.rsplit("/", 1)[1]) for k, _ in backend.list("journal/") if k[-1].isdigit())


def ids(repo: Repository) -> set[str]:
    return {s.id for s in repo.snapshots()}


def test_warm_sync_reads_only_what_is_new(repo, backend, cache_dir, tmp_path, helpers) -> None:
    for i in range(12):
        helpers.make_snapshot(repo, 3, seed=i, course=f"c{i}")
    repo.sync_catalog()  # the writer's catalog reads its own last entries
    counting = CountingBackend(backend.root)
    with Repository.open(counting, cache_dir=cache_dir) as warm:  # the same catalog
        assert len(ids(warm)) == 12
        assert counting.listed == []  # neither index/ nor snapshots/ listed
        assert counting.reads == 3  # config, the pointer, the first generation not written
        with Repository.open(backend, cache_dir=tmp_path / "writer") as writer:
            made = helpers.make_snapshot(writer, 3, seed=99, course="new")
        counting.reads = 0
        warm.sync_catalog()
        assert made.snap_id in ids(warm)
        # pointer, two entries (index file, snapshot), their two files, the end
        assert counting.reads == 6 and counting.listed == []


def test_fresh_catalog_replays_from_the_checkpoint(repo, backend, tmp_path, helpers) -> None:
    made = [helpers.make_snapshot(repo, 3, seed=i, course=f"c{i}") for i in range(3)]
    counting = CountingBackend(backend.root)
    with Repository.open(counting, cache_dir=tmp_path / "other") as fresh:
        assert ids(fresh) == {m.snap_id for m in made}
        assert all(fresh.has(o) for m in made for o in m.objects)
        assert counting.listed == []


def test_repository_without_a_journal_is_listed_as_before(repo, backend, tmp_path, helpers) -> None:
    """An older repository: no journal/checkpoint.  Commands list; writers
    journal nothing; prune (or repair journal) starts the journal."""
    for key, _ in list(backend.list("journal/")):
        backend.delete(key)
    made = helpers.make_snapshot(repo, 3, seed=1)
    assert list(backend.list("journal/")) == []
    repo.sync_catalog()  # its catalog read a journal before: the position is voided once
    writes: list[str] = []
    real_set_meta = repo.catalog.set_meta
    repo.catalog.set_meta = lambda key, _value: writes.append(key)  # type: ignore[method-assign]
    repo.sync_catalog()
    assert writes == []  # not at every command
    repo.catalog.set_meta = real_set_meta  # type: ignore[method-assign]
    counting = CountingBackend(backend.root)
    with Repository.open(counting, cache_dir=tmp_path / "other") as other:
        assert ids(other) == {made.snap_id}
        assert "snapshots/" in counting.listed
    prune_repository(repo)
    assert read_pointer(backend) is not None
    counting = CountingBackend(backend.root)
    with Repository.open(counting, cache_dir=tmp_path / "third") as third:
        assert ids(third) == {made.snap_id}
        assert counting.listed == []
    assert check_repository(repo).problems == []


def test_concurrent_writers_take_distinct_generations(repo, backend, tmp_path, helpers) -> None:
    """Eight writers, each with its own catalog, commit at once: each entry
    gets its own generation and a fresh catalog sees every snapshot."""
    errors: list[BaseException] = []
    made: list[str] = []

    def write(i: int) -> None:
        try:
            with Repository.open(LocalBackend(backend.root), cache_dir=tmp_path / f"w{i}") as r:
                made.append(helpers.make_snapshot(r, 2, seed=100 + i, course=f"w{i}").snap_id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    gens = journal_gens(backend)
    assert gens == list(range(gens[0], gens[0] + len(gens)))  # no hole
    with Repository.open(backend, cache_dir=tmp_path / "reader") as reader:
        assert ids(reader) == set(made)
    repo.sync_catalog()
    assert ids(repo) == set(made)
    assert check_repository(repo).ok


def test_append_takes_the_next_free_generation(repo, backend) -> None:
    pointer = read_pointer(backend)
    assert pointer is not None
    stale = (pointer.journal, pointer.gen)  # both writers last read the same generation
    a = append(backend, stale, added=[(SNAPSHOT, "a" * 64)])
    b = append(backend, stale, added=[(SNAPSHOT, "b" * 64)])
    assert (a, b) == (pointer.gen + 1, pointer.gen + 2)
    # another journal's position (a repaired one) is not trusted
    c = append(backend, ("0" * 32, 10**6), added=[(SNAPSHOT, "c" * 64)])
    assert c == pointer.gen + 3


def test_entry_before_its_file_shows_nothing_until_the_file_is_there(
    repo, backend, tmp_path, helpers
) -> None:
    """An entry naming a snapshot whose file is not durable yet (or never
    will be) must not make it visible; once the file is there, it is."""
    made = helpers.make_snapshot(repo, 3, seed=5)
    data = backend.read(repo.record_key(made.snap_id))
    backend.delete(repo.record_key(made.snap_id))
    with Repository.open(backend, cache_dir=tmp_path / "early") as early:
        assert ids(early) == set()
        backend.write(repo.record_key(made.snap_id), data)
        early.sync_catalog()
        assert ids(early) == {made.snap_id}
    # a damaged file is no better than a missing one
    backend.write(repo.record_key(made.snap_id), data[:-3] + b"}}}")
    with Repository.open(backend, cache_dir=tmp_path / "damaged") as damaged:
        assert ids(damaged) == set()


def test_writer_killed_between_snapshot_file_and_entry(
    repo, backend, tmp_path, monkeypatch, helpers
) -> None:
    """The file is durable but no entry names it: the next writer of the
    course journals it (its ref still holds the record), and until then
    check warns of it -- an error only where no head holds it (below)."""

    class Killed(BaseException):
        pass

    real = series.journal_files

    def die(*_a: object, **_k: object) -> None:
        raise Killed

    monkeypatch.setattr(series, "journal_files", die)
    with pytest.raises(Killed):
        helpers.make_snapshot(repo, 3, seed=1, epoch=1000.0)
    monkeypatch.setattr(series, "journal_files", real)
    [orphan] = [k.rsplit("/", 1)[1] for k, _ in backend.list("snapshots/")]
    with Repository.open(backend, cache_dir=tmp_path / "c1") as other:
        assert ids(other) == set()
        report = check_repository(other)
        assert report.ok, report.errors
        [warning] = [p for p in report.problems if p.kind == JOURNAL]
        assert f"snapshot {orphan} is not journaled yet" in warning.message
        # a server catalog the writer shares holds its row already: no error either
        other.catalog.add_snapshot(snapshot_row(orphan, other.read_snapshot(orphan)))
        report = check_repository(other)
        assert report.ok, report.errors
        other.catalog.remove_snapshot(orphan)
    with Repository.open(backend, cache_dir=tmp_path / "c2") as writer:
        second = helpers.make_snapshot(writer, 3, seed=2, epoch=2000.0)
        assert orphan in ids(writer)
    with Repository.open(backend, cache_dir=tmp_path / "c1") as other:
        assert ids(other) == {orphan, second.snap_id}
        assert check_repository(other).ok


def test_forget_killed_between_entry_and_delete(
    repo, backend, tmp_path, monkeypatch, helpers
) -> None:
    """A removal is journaled first: while the file is still there the
    snapshot stays listed (forget run again deletes it), and once it is
    gone every catalog drops it."""
    keep = helpers.make_snapshot(repo, 3, seed=1, course="a")
    gone = helpers.make_snapshot(repo, 3, seed=2, course="b")
    with Repository.open(backend, cache_dir=tmp_path / "watcher") as watcher:
        assert ids(watcher) == {keep.snap_id, gone.snap_id}
        deleted: list[str] = []
        monkeypatch.setattr(backend, "delete", deleted.append)  # the kill: nothing deleted
        with repo.lock(exclusive=True, operation="forget"):
            repo.delete_snapshot(gone.snap_id)
        monkeypatch.undo()
        watcher.sync_catalog()
        assert ids(watcher) == {keep.snap_id, gone.snap_id}
        assert check_repository(watcher).ok
        backend.delete(repo.record_key(gone.snap_id))  # the rerun's delete
        watcher.sync_catalog()
        assert ids(watcher) == {keep.snap_id}
    with Repository.open(backend, cache_dir=tmp_path / "fresh") as fresh:
        assert ids(fresh) == {keep.snap_id}


def test_prune_compacts_and_catalogs_behind_catch_up(repo, backend, tmp_path, helpers) -> None:
    made = [helpers.make_snapshot(repo, 3, seed=i, course=f"c{i}") for i in range(4)]
    behind = Repository.open(backend, cache_dir=tmp_path / "behind")
    try:
        assert len(ids(behind)) == 4
        api.forget_snapshots(repo, [made[0].snap_id])
        prune_repository(repo)
        pointer = read_pointer(backend)
        assert pointer is not None and journal_gens(backend) == [pointer.gen]
        behind.sync_catalog()
        assert ids(behind) == {m.snap_id for m in made[1:]}
        assert not any(behind.has(o) for o in made[0].objects)
        assert all(behind.get(o)[1] == p for m in made[1:] for o, p in m.objects.items())
    finally:
        behind.close()
    assert check_repository(repo).problems == []


def test_damaged_journal_is_detected_listed_around_and_repaired(
    repo, backend, tmp_path, helpers
) -> None:
    made = [helpers.make_snapshot(repo, 3, seed=i, course=f"c{i}") for i in range(3)]
    last = journal_gens(backend)[-1]
    data = backend.read(gen_key(last))
    backend.write(gen_key(last), data.replace(b"+s ", b"+i ", 1))
    with pytest.raises(JournalDamagedError):
        decode_entry(backend.read(gen_key(last)), last)
    report = check_repository(repo)
    assert [p.kind for p in report.errors] == [JOURNAL]
    assert "does not match its checksum" in report.errors[0].message
    # a damaged journal costs a listing, never a snapshot
    with Repository.open(backend, cache_dir=tmp_path / "other") as other:
        assert ids(other) == {m.snap_id for m in made}
        assert any("repair journal" in n for n in other.notices)
    result = api.repair_journal(repo)
    assert result["snapshots"] == 3
    assert check_repository(repo).problems == []
    counting = CountingBackend(backend.root)
    with Repository.open(counting, cache_dir=tmp_path / "other") as other:
        assert ids(other) == {m.snap_id for m in made}
        assert counting.listed == [] and other.notices == []


def test_check_finds_files_the_journal_does_not_know(repo, backend, tmp_path, helpers) -> None:
    made = helpers.make_snapshot(repo, 3, seed=1)
    # a snapshot file put in by hand, and a journaled one deleted by hand
    record = helpers.snapshot_record(made.root, "by-hand", 5.0)
    from coursevault.store.ids import ObjectType, object_id
    from coursevault.store.series import encode_record

    data = encode_record(record)
    by_hand = object_id(ObjectType.SNAPSHOT, data).hex()
    backend.write(repo.record_key(by_hand), data)
    backend.delete(repo.record_key(made.snap_id))
    messages = [p.message for p in check_repository(repo).errors if p.kind == JOURNAL]
    assert any(f"snapshot {by_hand} is not journaled" in m for m in messages)
    assert any(f"names snapshot {made.snap_id}, which is not there" in m for m in messages)
    api.repair_journal(repo)
    state = replay(backend)
    # the course's ref still held the deleted one's record: it is published again
    assert state is not None and state.live[SNAPSHOT] == {by_hand, made.snap_id}
    assert ids(repo) == {by_hand, made.snap_id}
    assert check_repository(repo).ok


def test_pointer_damage_falls_back_to_listing(repo, backend, tmp_path, helpers) -> None:
    made = helpers.make_snapshot(repo, 3, seed=1)
    backend.write(POINTER_KEY, b"garbage\n")
    with Repository.open(backend, cache_dir=tmp_path / "other") as other:
        assert ids(other) == {made.snap_id}
    assert any(p.kind == JOURNAL for p in check_repository(repo).errors)
    # a writer meanwhile does not fail: its files are there, repair journals them
    second = helpers.make_snapshot(repo, 3, seed=2, course="b")
    api.repair_journal(repo)
    with Repository.open(backend, cache_dir=tmp_path / "third") as third:
        assert ids(third) == {made.snap_id, second.snap_id}


def test_cli_repair_journal(tmp_path, repo, backend, cache_dir, helpers) -> None:
    from coursevault.cli.app import main

    helpers.make_snapshot(repo, 3, seed=1)
    for key, _ in list(backend.list("journal/")):
        backend.delete(key)
    code = main(["check", "-r", str(backend.root), "--cache-dir", str(cache_dir)])
    assert code == 0  # no journal: a warning, not an error
    assert main(["repair", "journal", "-r", str(backend.root), "--cache-dir", str(cache_dir)]) == 0
    assert read_pointer(backend) is not None
    assert check_repository(repo).problems == []


def test_a_copy_of_the_repository_is_catalogued_as_itself(
    repo, backend, cache_dir, tmp_path, helpers
) -> None:
    """A repository folder copied (``cp -a``, rsync) keeps its id, and so
    shares the machine's catalog with the original.  Once one copy was
    pruned, the other's commands took the catalog's word for what its
    journal held: its intact snapshots had objects "missing: its pack is
    missing", ``check`` reported errors and ``prune`` stopped.  A catalog
    used at another location replays that location's journal from its
    checkpoint."""
    made = [helpers.make_snapshot(repo, 3, seed=i, course=f"c{i}") for i in range(4)]
    copy_root = tmp_path / "copy"
    shutil.copytree(backend.root, copy_root)
    api.forget_snapshots(repo, [made[0].snap_id])
    prune_repository(repo)
    with Repository.open(LocalBackend(copy_root), cache_dir=cache_dir) as copy:
        assert ids(copy) == {m.snap_id for m in made}
        assert all(copy.get(o)[1] == p for m in made for o, p in m.objects.items())
        assert check_repository(copy).problems == []
    with Repository.open(backend, cache_dir=cache_dir) as original:  # and back
        assert ids(original) == {m.snap_id for m in made[1:]}
        assert check_repository(original).problems == []


def part_keys(backend: LocalBackend) -> list[str]:
    return sorted(k for k, _ in backend.list(journal.PART_PREFIX))


def test_a_large_checkpoint_is_written_and_read_in_parts(
    repo, backend, tmp_path, helpers, monkeypatch
) -> None:
    """More names than PART_LINES: the checkpoint lists its parts, each
    holding PART_LINES names, and every reader gets every name from them."""
    monkeypatch.setattr(journal, "PART_LINES", 3)
    made = [helpers.make_snapshot(repo, 3, seed=i, course=f"c{i}") for i in range(5)]
    prune_repository(repo)  # writes a checkpoint: 5 snapshots + their index files
    pointer = read_pointer(backend)
    assert pointer is not None
    head = backend.read(gen_key(pointer.gen))
    assert head.startswith(f"cvjournal 2 {pointer.journal} {pointer.gen} checkpoint\n".encode())
    names = sum(1 for _ in replay_lines(backend, pointer.gen))
    assert names >= 6 and len(part_keys(backend)) == -(-names // 3)
    with Repository.open(backend, cache_dir=tmp_path / "fresh") as fresh:
        assert ids(fresh) == {m.snap_id for m in made}
        assert fresh.notices == []
    state = replay(backend)
    assert state is not None and state.live[SNAPSHOT] == {m.snap_id for m in made}
    assert check_repository(repo).problems == []
    # the next checkpoint deletes the parts it does not use
    api.forget_snapshots(repo, [made[0].snap_id])
    prune_repository(repo)
    pointer = read_pointer(backend)
    assert pointer is not None
    used = {
        part_key(line.split()[1])
        for line in backend.read(gen_key(pointer.gen)).decode().splitlines()[1:-1]
    }
    assert set(part_keys(backend)) == used
    with Repository.open(backend, cache_dir=tmp_path / "fresh") as fresh:  # crosses it
        assert ids(fresh) == {m.snap_id for m in made[1:]}


def replay_lines(backend: LocalBackend, gen: int):
    pointer = read_pointer(backend)
    assert pointer is not None
    found = journal.read_entry_lines(backend, pointer, gen)
    assert found is not None
    return found[1]


def test_a_checkpoint_of_part_lines_names_is_one_file(repo, backend, helpers, monkeypatch) -> None:
    helpers.make_snapshot(repo, 3, seed=1)
    prune_repository(repo)
    pointer = read_pointer(backend)
    assert pointer is not None
    names = sum(1 for _ in replay_lines(backend, pointer.gen))
    monkeypatch.setattr(journal, "PART_LINES", names)
    prune_repository(repo)
    pointer = read_pointer(backend)
    assert pointer is not None
    assert backend.read(gen_key(pointer.gen)).startswith(b"cvjournal 1 ")
    assert part_keys(backend) == []


@pytest.mark.parametrize("damage", ["missing", "flipped", "swapped"])
def test_a_damaged_part_is_reported_listed_around_and_repaired(
    repo, backend, tmp_path, helpers, monkeypatch, damage
) -> None:
    monkeypatch.setattr(journal, "PART_LINES", 2)
    made = [helpers.make_snapshot(repo, 3, seed=i, course=f"c{i}") for i in range(3)]
    prune_repository(repo)
    first, second = part_keys(backend)[:2]
    if damage == "missing":
        backend.delete(first)
    elif damage == "flipped":
        data = bytearray(backend.read(first))
        data[-70] ^= 1
        backend.write(first, bytes(data))
    else:  # two parts' bytes swapped: each is checked against its own name
        a, b = backend.read(first), backend.read(second)
        backend.write(first, b)
        backend.write(second, a)
    report = check_repository(repo)
    assert [p.kind for p in report.errors] == [JOURNAL]
    with Repository.open(backend, cache_dir=tmp_path / "other") as other:
        assert ids(other) == {m.snap_id for m in made}  # listed: nothing lost
        assert any("repair journal" in n for n in other.notices)
    api.repair_journal(repo)
    assert check_repository(repo).problems == []
    with Repository.open(backend, cache_dir=tmp_path / "third") as third:
        assert ids(third) == {m.snap_id for m in made} and third.notices == []


def test_an_old_reader_refuses_a_checkpoint_in_parts_by_its_version(
    repo, backend, helpers, monkeypatch
) -> None:
    """A checkpoint in parts is version 2 in its header: coursevault before
    parts says "not a journal file of version 1" and lists instead, never
    reading a part's hashes as names."""
    monkeypatch.setattr(journal, "PART_LINES", 1)
    helpers.make_snapshot(repo, 3, seed=1)
    prune_repository(repo)
    pointer = read_pointer(backend)
    assert pointer is not None
    with pytest.raises(JournalDamagedError, match="read without its parts"):
        decode_entry(backend.read(gen_key(pointer.gen)), pointer.gen)


def test_forget_all_journals_a_batch_of_courses_in_one_entry(
    repo, backend, tmp_path, monkeypatch, helpers
) -> None:
    """A site's ``forget --all`` removed a snapshot of every course with a
    journal file a course (160,000 at 1,000x, each read by every other
    catalog's next sync); now one a batch of rows.  Rows keep their course
    order, and a reader that stops after the first batch leaves the rest."""
    made = {
        c: [
            helpers.make_snapshot(repo, 3, seed=10 * i + n, course=c, epoch=1000.0 + n)
            for n in range(2)
        ]
        for i, c in enumerate(["a", "b", "c", "d", "e", "f"])
    }
    monkeypatch.setattr(api, "FORGET_BATCH", 5)  # a flush after every third course
    before = journal_gens(backend)
    rows = api.iter_forget(repo, api.Policy(last=1), course=None)
    first = [next(rows) for _ in range(6)]  # courses a-c: the first batch
    assert [r["course"] for r in first] == ["a", "a", "b", "b", "c", "c"]
    assert len(journal_gens(backend)) == len(before) + 1
    rows.close()  # stopped: d-f untouched
    with Repository.open(backend, cache_dir=tmp_path / "other") as other:
        left = ids(other)
        assert check_repository(other).ok
    assert left == {s.snap_id for c in "abcdef" for s in made[c]} - {
        made[c][0].snap_id for c in "abc"
    }
    rows = api.iter_forget(repo, api.Policy(last=1), course=None)
    assert [(r["course"], r["action"]) for r in rows][-2:] == [("f", "keep"), ("f", "remove")]
    assert len(journal_gens(backend)) == len(before) + 3  # then a-d (5 rows), e-f
    with Repository.open(backend, cache_dir=tmp_path / "fresh") as fresh:
        assert ids(fresh) == {made[c][1].snap_id for c in "abcdef"}
        assert check_repository(fresh).ok
