"""Damaged head refs (docs/format.md §7, "Parents"): a ref holds the record
of its course's last commit, which the next writer publishes as a snapshot
file.  A damaged one must be reported by ``check``, refused by writers (never
published as a phantom snapshot), and rewritten by ``repair refs``."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import CORPUS_DIR

NIGHTS = [
    CORPUS_DIR / f"mod_studentquiz_tests_fixtures_backup-moodle2-aggregated-{n}.mbz"
    for n in ("before", "during-0", "during-1")
]


def _time_moved(ref: bytes) -> bytes:
    """The record's time ten years on: still valid JSON of the right course."""
    return re.sub(rb'"time":"20', b'"time":"21', ref, count=1)


def _course_changed(ref: bytes) -> bytes:
    return ref.replace(b'"course":"sq"', b'"course":"zz"', 1)


def _garbled(ref: bytes) -> bytes:
    return ref[:40] + b"\xff" * 20 + ref[60:]


def _old_ref_of_another_course(ref: bytes) -> bytes:
    """A ref as programs before the ``last`` line wrote it, whose record
    names another course: caught without the id."""
    lines = [ln for ln in ref.split(b"\n") if not ln.startswith(b"last ")]
    return _course_changed(b"\n".join(lines))


@pytest.mark.parametrize(
    "damage", [_time_moved, _course_changed, _garbled, _old_ref_of_another_course]
)
def test_a_damaged_ref_is_reported_refused_and_repaired(
    cv: Callable[..., object], tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    repo = tmp_path / "repo"
    assert cv("init", repo).code == 0
    for night in NIGHTS[:2]:
        assert cv("ingest", "-r", repo, "--course", "sq", night).code == 0
    ref = repo / "refs" / "heads" / "sq"
    assert b"\nlast " in ref.read_bytes()
    ref.write_bytes(damage(ref.read_bytes()))

    r = cv("check", "-r", repo, "--json")
    report = json.loads(r.out)
    assert r.code == 1 and [p["kind"] for p in report["problems"]] == ["ref"], report
    assert "refs/heads/sq is damaged" in report["problems"][0]["message"]

    # the next night is refused, one line naming the ref and its repair;
    # no snapshot of a changed time or course appears
    r = cv("ingest", "-r", repo, "--course", "sq", NIGHTS[2])
    assert r.code == 1 and r.err.count("\n") == 1, r.err
    assert "refs/heads/sq is damaged" in r.err and "repair refs" in r.err
    before = json.loads(cv("snapshots", "-r", repo, "--json").out)
    assert {s["course"] for s in before} == {"sq"} and len(before) == 2
    assert all(s["time"] < "2100" for s in before)

    r = cv("repair", "refs", "-r", repo, "--json")
    assert r.code == 0, r.err
    assert [(x["course"], x["action"]) for x in json.loads(r.out)] == [("sq", "rewritten")]
    assert cv("check", "-r", repo).code == 0
    assert cv("ingest", "-r", repo, "--course", "sq", NIGHTS[2]).code == 0
    after = json.loads(cv("snapshots", "-r", repo, "--json").out)
    assert len(after) == 3 and {s["course"] for s in after} == {"sq"}
    assert cv("check", "-r", repo, "--read-data").code == 0


def test_an_encrypted_ref_that_does_not_open_is_reported_and_repaired(
    cv: Callable[..., object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sealed, a damaged ref does not decrypt: before, ``check`` passed and
    every writer, forget and prune failed on it with nothing to repair it."""
    monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", "correct horse")
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "correct horse")
    repo = tmp_path / "repo"
    assert cv("init", repo, "--encrypt").code == 0
    for night in NIGHTS[:2]:
        assert cv("ingest", "-r", repo, "--course", "sq", night).code == 0
    (ref,) = [p for p in (repo / "refs" / "heads").iterdir() if not p.name.startswith(".")]
    data = bytearray(ref.read_bytes())
    data[-5] ^= 0x01
    ref.write_bytes(bytes(data))

    r = cv("check", "-r", repo, "--json")
    assert r.code == 1 and [p["kind"] for p in json.loads(r.out)["problems"]] == ["ref"]
    first = json.loads(cv("snapshots", "-r", repo, "--json").out)[0]["id"]
    assert cv("forget", "-r", repo, "--snapshot", first).code == 0  # passes it over
    assert cv("prune", "-r", repo).code == 0
    r = cv("ingest", "-r", repo, "--course", "sq", NIGHTS[2])
    assert r.code == 1 and "is damaged" in r.err and "repair refs" in r.err
    assert cv("repair", "refs", "-r", repo).code == 0
    assert cv("ingest", "-r", repo, "--course", "sq", NIGHTS[2]).code == 0
    assert cv("check", "-r", repo, "--read-data").code == 0
    assert len(json.loads(cv("snapshots", "-r", repo, "--json").out)) == 2


def test_repair_refs_keeps_a_commit_whose_record_still_verifies(
    cv: Callable[..., object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer killed after its ref swap, before its snapshot file; then
    only the ref's first line is damaged.  The record still hashes to its
    'last' line, yet repair refs rewrote the ref without it: the commit was
    lost for good."""
    from coursevault import api
    from coursevault.store import backend as backends

    repo = tmp_path / "repo"
    assert cv("init", repo).code == 0
    assert cv("ingest", "-r", repo, "--course", "sq", NIGHTS[0]).code == 0
    write = backends.LocalBackend.write

    def killed(self: backends.LocalBackend, key: str, data: bytes) -> None:
        if key.startswith("snapshots/"):
            raise KeyboardInterrupt("killed after the swap, before the snapshot file")
        write(self, key, data)

    monkeypatch.setattr(backends.LocalBackend, "write", killed)
    with pytest.raises(KeyboardInterrupt), api.open_repository(str(repo)) as opened:
        api.ingest(opened, str(NIGHTS[1]), course="sq")
    monkeypatch.undo()
    ref = repo / "refs" / "heads" / "sq"
    lines = ref.read_bytes().split(b"\n")
    committed = next(ln[5:].decode() for ln in lines if ln.startswith(b"last "))
    ref.write_bytes(b"\n".join([b"X" + lines[0][1:], *lines[1:]]))
    r = cv("repair", "refs", "-r", repo, "--json")
    assert r.code == 0, r.err
    [row] = json.loads(r.out)
    assert row["kept"] == committed and row["action"] == "rewritten"
    ids = [s["id"] for s in json.loads(cv("snapshots", "-r", repo, "--json").out)]
    assert committed in ids and len(ids) == 2
    assert cv("check", "-r", repo, "--read-data").code == 0


@pytest.mark.parametrize("damage", ["flip", "empty"])
def test_an_encrypted_journal_file_that_does_not_open_is_damage_repair_mends(
    cv: Callable[..., object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """Sealed, a damaged journal file does not decrypt: every command of the
    repository failed on it -- snapshots, check, repair journal too -- where
    a plain repository's damaged entry is listed around, named by check and
    mended by ``repair journal`` (an adversarial pass)."""
    import shutil

    monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", "correct horse")
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "correct horse")
    repo = tmp_path / "repo"
    assert cv("init", repo, "--encrypt").code == 0
    for night in NIGHTS:
        assert cv("ingest", "-r", repo, "--course", "sq", night).code == 0
    entry = max(p for p in (repo / "journal").iterdir() if p.name.isdigit())
    data = bytearray(entry.read_bytes())
    if damage == "flip":
        data[40] ^= 0x01
    entry.write_bytes(bytes(data) if damage == "flip" else b"")
    shutil.rmtree(os.environ["COURSEVAULT_CACHE"])  # a cold cache reads the journal
    r = cv("snapshots", "-r", repo, "--json")
    assert r.code == 0 and len(json.loads(r.out)) == 3, r
    r = cv("check", "-r", repo, "--json")
    assert r.code == 1 and [p["kind"] for p in json.loads(r.out)["problems"]] == ["journal"]
    assert cv("repair", "journal", "-r", repo).code == 0
    assert cv("check", "-r", repo, "--read-data").code == 0


def test_a_damaged_last_record_is_said_and_restored_from_its_ref(
    cv: Callable[..., object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newest night's record damaged: every listing left it out in
    silence, ``export sq@latest`` gave the night before, and nothing but
    ``forget`` mended it -- yet the course's ref holds a whole copy."""
    import shutil

    repo = tmp_path / "repo"
    assert cv("init", repo).code == 0
    for night in NIGHTS:
        assert cv("ingest", "-r", repo, "--course", "sq", night).code == 0
    snaps = json.loads(cv("snapshots", "-r", repo, "--json").out)
    newest = snaps[-1]["id"]
    record = repo / "snapshots" / newest[:2] / newest
    data = bytearray(record.read_bytes())
    data[30] ^= 0x01
    record.write_bytes(bytes(data))
    shutil.rmtree(os.environ["COURSEVAULT_CACHE"])
    r = cv("snapshots", "-r", repo, "--json")
    assert len(json.loads(r.out)) == 2 and f"snapshot record {newest[:12]} is damaged" in r.err
    r = cv("export", "-r", repo, "sq@latest", "-o", tmp_path / "x.mbz")
    assert r.code == 0 and f"snapshot record {newest[:12]} is damaged" in r.err, r
    assert cv("check", "-r", repo).code == 1
    r = cv("repair", "refs", "-r", repo)
    assert r.code == 0 and "1 damaged snapshot records restored" in r.out, r
    assert cv("check", "-r", repo, "--read-data").code == 0
    r = cv("export", "-r", repo, "sq@latest", "-o", tmp_path / "x.mbz")
    assert r.code == 0 and newest[:12] in r.out and not r.err, r
