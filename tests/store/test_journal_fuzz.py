"""A journal file whose checksum holds but whose content is wrong -- a file
copied in from another repository, a writer's bug, a hand edit that
re-summed it -- is damage every reader names (``JournalDamagedError``:
listed around, ``repair journal`` mends it), never another exception.

Coverage of a full suite run showed most of the journal's checks of such
content (a bad header, another journal's generation, a checkpoint that
removes files, a part that is not its place's) never ran."""

from __future__ import annotations

import random
from pathlib import Path

import blake3
import pytest

from coursevault import api
from coursevault.errors import CoursevaultError
from coursevault.store import journal
from coursevault.store.backend import LocalBackend
from coursevault.store.check import check_repository
from coursevault.store.journal import JournalDamagedError, part_key, read_pointer, replay
from coursevault.store.prune import prune_repository
from coursevault.store.repository import Repository

SEED = 20261208


def _summed(body: bytes) -> bytes:
    return body + f"end {blake3.blake3(body).hexdigest()}\n".encode()


def _body(data: bytes) -> bytes:
    return data[: data.rfind(b"end ")]


def _mutations(body: bytes, rng: random.Random) -> list[bytes]:
    """Ways to get a journal file's content wrong, the checksum kept valid."""
    lines = body.split(b"\n")[:-1]
    head = lines[0].split(b" ")
    out = []
    for i in range(len(head)):  # each header field wrong
        for value in (b"", b"x", b"3", b"0", b"-1", b"f" * 32, b"checkpoint", b"part", b"\xff"):
            out.append(b" ".join([*head[:i], value, *head[i + 1 :]]) + b"\n" +
                       b"\n".join(lines[1:]) + (b"\n" if len(lines) > 1 else b""))
    for _ in range(40):  # a line's character changed, dropped or doubled
        if len(lines) < 2:
            break
        n = rng.randrange(1, len(lines))
        line = bytearray(lines[n])
        k = rng.randrange(len(line)) if line else 0
        kind = rng.choice(["set", "drop", "double", "sign", "empty"])
        if kind == "set" and line:
            line[k] = rng.choice(b"+-ispq g0\xc3\x00")
        elif kind == "drop" and line:
            del line[k]
        elif kind == "double" and line:
            line.insert(k, line[k])
        elif kind == "sign" and line:
            line[0] = ord("-") if line[0] == ord("+") else ord("+")
        else:
            line = bytearray()
        changed = [*lines[:n], bytes(line), *lines[n + 1 :]]
        out.append(b"\n".join(changed) + b"\n")
    out.append(lines[0] + b"\n")  # no names
    out.append(b"")  # nothing at all
    return out


@pytest.fixture
def journaled(repo: Repository, backend: LocalBackend, helpers, monkeypatch) -> set[str]:
    """Snapshots whose journal is a checkpoint in parts and two entries."""
    monkeypatch.setattr(journal, "PART_LINES", 2)
    made = {helpers.make_snapshot(repo, 3, seed=i, course=f"c{i}").snap_id for i in range(3)}
    prune_repository(repo)
    made |= {helpers.make_snapshot(repo, 3, seed=i, course=f"c{i}").snap_id for i in (7, 8)}
    return made


def _journal_files(backend: LocalBackend) -> dict[str, bytes]:
    return {key: backend.read(key) for key, _size in backend.list("journal/")
            if not key.endswith("checkpoint")}


def test_wrong_content_under_a_valid_checksum_is_journal_damage(
    repo: Repository, backend: LocalBackend, journaled: set[str], tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    files = _journal_files(backend)
    pointer = read_pointer(backend)
    assert pointer is not None and any("/part-" in k or "part" in k for k in files), files
    tried = damaged = 0
    for key, data in sorted(files.items()):
        for wrong in _mutations(_body(data), rng):
            backend.write(key, _summed(wrong))
            tried += 1
            try:
                replay(backend)
            except JournalDamagedError:
                damaged += 1
            # a checksum-valid file may also be a well-formed other journal
            # (a sign flipped): a reader's business is only never to crash
            backend.write(key, data)
    assert tried > 100 and damaged > tried * 0.8, (tried, damaged)


def test_a_part_in_the_wrong_place_or_journal_is_named(
    repo: Repository, backend: LocalBackend, journaled: set[str]
) -> None:
    """A part whose hash is its name (so it passes that check) but whose
    header names another place or journal: ``is not part N``."""
    pointer = read_pointer(backend)
    assert pointer is not None
    key = journal.gen_key(pointer.gen)
    checkpoint = backend.read(key)
    lines = _body(checkpoint).split(b"\n")
    digest = lines[1].split(b" ")[1].decode()
    part = backend.read(part_key(digest))
    head, rest = _body(part).split(b"\n", 1)
    magic, version, owner, ordinal, kind = head.split(b" ")
    for wrong_head in (b" ".join([magic, version, owner, b"2", kind]),
                       b" ".join([magic, version, b"0" * 32, ordinal, kind])):
        moved = _summed(wrong_head + b"\n" + rest)
        name = blake3.blake3(moved).hexdigest()
        backend.write(part_key(name), moved)
        backend.write(key, _summed(b"\n".join([lines[0], b"p " + name.encode(), *lines[2:]])))
        with pytest.raises(JournalDamagedError, match="is not part 1"):
            replay(backend)
        backend.write(key, checkpoint)


@pytest.mark.parametrize("which", range(6))
def test_repositories_with_such_a_journal_list_around_it_and_repair_it(
    repo: Repository, backend: LocalBackend, journaled: set[str], tmp_path: Path, which: int
) -> None:
    """What every command does with it: lists the repository around the
    journal with a notice, loses no snapshot, check names it as journal
    damage, and ``repair journal`` leaves it clean."""
    rng = random.Random(SEED + which)
    files = sorted(_journal_files(backend).items())
    key, data = files[which % len(files)]
    wrongs = _mutations(_body(data), rng)
    backend.write(key, _summed(rng.choice(wrongs[:-2])))  # a header field wrong
    try:
        with Repository.open(backend, cache_dir=tmp_path / "fresh") as fresh:
            listed = {s.id for s in fresh.snapshots()}
    except CoursevaultError as exc:  # one line, never another exception
        pytest.fail(f"{key}: {exc}")
    assert listed >= journaled
    report = check_repository(repo)
    assert {p.kind for p in report.errors} <= {"journal"}, report.errors
    api.repair_journal(repo)
    assert check_repository(repo).problems == []
    with Repository.open(backend, cache_dir=tmp_path / "after") as after:
        assert {s.id for s in after.snapshots()} == journaled and after.notices == []
