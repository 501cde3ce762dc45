"""Damaged repository files and the commands that repair them (issue 20, defects 5-6).

Each test damages one kind of file of a real repository (three real Moodle
backups ingested as nights of one course, so later nights' blocks are
compressed against dictionaries), then asserts what ``check`` reports, that
the repair command the guide names for it works, and that every snapshot
exports byte for byte afterwards.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import CORPUS_DIR

NIGHTS = [
    CORPUS_DIR / f"mod_studentquiz_tests_fixtures_backup-moodle2-aggregated-{n}.mbz"
    for n in ("before", "during-0", "during-1")
]


@pytest.fixture
def filled(cv: Callable[..., object], tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    assert cv("init", repo, "--pack-size", "1").code == 0
    for night in NIGHTS:
        r = cv("ingest", "-r", repo, "--course", "sq", night)
        assert r.code == 0, r.err
    return repo


def snapshots(cv, repo: Path) -> list[str]:
    r = cv("snapshots", "-r", repo, "--json")
    assert r.code == 0, r.err
    return [s["id"] for s in sorted(json.loads(r.out), key=lambda s: s["time"])]


def assert_all_export(cv, repo: Path, tmp_path: Path) -> None:
    """Every night comes back byte for byte (the tar streams compared)."""
    ids = snapshots(cv, repo)
    assert len(ids) == len(NIGHTS)
    for snap, night in zip(ids, NIGHTS, strict=True):
        out = tmp_path / f"{snap}.mbz"
        r = cv("export", "-r", repo, snap, "-o", out)
        assert r.code == 0, r.err
        assert gzip.decompress(out.read_bytes()) == gzip.decompress(night.read_bytes())


def check(cv, repo: Path) -> dict:
    r = cv("check", "-r", repo, "--read-data", "--json")
    report = json.loads(r.out)
    assert (r.code == 0) == report["ok"]
    return report


def catalog_file(cache: Path, repo: Path) -> Path:
    repo_id = json.loads((repo / "config").read_text())["id"]
    return cache / repo_id / "catalog.sqlite"


def index_files(repo: Path) -> list[Path]:
    return sorted((repo / "index").iterdir())


def test_catalog_missing_locations_is_an_error_that_index_rebuild_repairs(
    cv, filled, cache, tmp_path
) -> None:
    """Defect 5: the catalog lost its location rows (its index files list is
    whole, so opening does not notice): check must fail, naming the repair."""
    assert check(cv, filled)["ok"]
    with sqlite3.connect(catalog_file(cache, filled)) as db:
        db.execute("DELETE FROM cv_locations WHERE id < x'80'")  # about half
    report = check(cv, filled)
    assert not report["ok"]
    errors = [p["message"] for p in report["problems"] if p["severity"] == "error"]
    # (objects whose blocks need a dictionary the catalog cannot find are
    # reported too, as an export meets them)
    [problem] = [e for e in errors if e.startswith("catalog ")]
    assert "reachable objects are not located" in problem and "index rebuild" in problem
    exports = [
        cv("export", "-r", filled, s, "-o", tmp_path / "x.mbz") for s in snapshots(cv, filled)
    ]
    assert any(r.code == 1 and "missing" in r.err for r in exports)
    r = cv("index", "rebuild", "-r", filled)
    assert r.code == 0, r.err
    assert check(cv, filled)["ok"]
    assert_all_export(cv, filled, tmp_path)


def test_catalog_snapshot_rows_are_found_by_check_and_rebuilt(cv, filled, cache) -> None:
    """Commands no longer list the repository to check the catalog's rows
    (a one-course command costs one course: the journal tells what is new),
    so wrong rows are check's to find and `index rebuild`'s to heal."""
    with sqlite3.connect(catalog_file(cache, filled)) as db:
        db.execute("UPDATE cv_snapshots SET id = 'f' || substr(id, 2)")
    report = check(cv, filled)
    [problem] = report["problems"]
    assert problem["kind"] == "catalog" and "snapshot rows differ" in problem["message"]
    assert "index rebuild" in problem["message"]
    assert cv("index", "rebuild", "-r", filled).code == 0
    assert len(snapshots(cv, filled)) == len(NIGHTS)
    assert check(cv, filled)["ok"]


@pytest.mark.parametrize(
    "edit",
    [
        "time = '2034-01-01T00:00:00Z'",
        "epoch = epoch - 86400",
        "course = 'other'",
        "root = (SELECT root FROM cv_snapshots ORDER BY epoch LIMIT 1)",
        "record = replace(record, '\"course\": \"sq\"', '\"course\": \"xx\"')",
    ],
)
def test_catalog_snapshot_columns_edited_are_found_by_check(cv, filled, cache, edit) -> None:
    """A row whose id is right but whose time, course, root or record are
    not its file's would resolve selectors and walks from what no snapshot
    holds: check compares every column with the (hash-checked) file."""
    with sqlite3.connect(catalog_file(cache, filled)) as db:
        newest = db.execute("SELECT id FROM cv_snapshots ORDER BY epoch DESC LIMIT 1").fetchone()
        db.execute(f"UPDATE cv_snapshots SET {edit} WHERE id = ?", newest)
    report = check(cv, filled)
    [problem] = report["problems"]
    assert problem["kind"] == "catalog" and "1 snapshot rows differ" in problem["message"]
    assert newest[0] in problem["message"]
    assert cv("index", "rebuild", "-r", filled).code == 0
    assert check(cv, filled)["ok"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "torn pages"])
def test_a_damaged_catalog_is_rebuilt_with_a_notice(cv, filled, cache, tmp_path, damage) -> None:
    """Defect 6: a catalog that cannot be read gave "internal error:
    DatabaseError" for every command, index rebuild included."""
    path = catalog_file(cache, filled)
    data = path.read_bytes()
    for extra in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        extra.unlink(missing_ok=True)
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        path.write_bytes(b"\x5a" * len(data))
    else:  # the headers of every page but the first torn
        torn = bytearray(data)
        for page in range(1, len(data) // 4096):
            torn[page * 4096 : page * 4096 + 64] = b"\xff" * 64
        path.write_bytes(bytes(torn))
    r = cv("snapshots", "-r", filled)
    assert r.code == 0, r.err
    [line] = r.err.strip().splitlines()
    assert line.startswith("coursevault: warning: the catalog") and "rebuilding" in line
    assert check(cv, filled)["ok"]
    assert_all_export(cv, filled, tmp_path)


def test_index_rebuild_on_a_damaged_catalog(cv, filled, cache, tmp_path) -> None:
    path = catalog_file(cache, filled)
    path.write_bytes(path.read_bytes()[:5000])
    r = cv("index", "rebuild", "-r", filled, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["snapshots"] == len(NIGHTS)
    assert_all_export(cv, filled, tmp_path)


def test_a_stray_file_is_ignored_with_a_warning(cv, filled, tmp_path) -> None:
    """Defect 6: a stray file in index/ made every export fail."""
    (filled / "index" / "README").write_text("notes\n")
    (filled / "snapshots" / "notes.txt").write_text("notes\n")
    r = cv("snapshots", "-r", filled)
    assert r.code == 0, r.err  # commands read the journal: they never meet it
    r = cv("check", "-r", filled)
    assert "warning: ignoring index/README: not an index file" in r.err
    report = check(cv, filled)
    assert report["ok"] and report["warnings"] == 2, report
    assert_all_export(cv, filled, tmp_path)
    r = cv("prune", "-r", filled)
    assert r.code == 0, r.err
    assert (filled / "index" / "README").exists()  # not the repository's to delete


def test_a_damaged_index_file_is_skipped_and_repaired_from_the_packs(
    cv, filled, cache, tmp_path
) -> None:
    """Defect 6: one flipped byte in one index file, then `index rebuild`,
    left the catalog empty and every command failing for every course."""
    victim = max(index_files(filled), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x10
    victim.write_bytes(bytes(data))
    assert_all_export(cv, filled, tmp_path)  # the catalog still knows its entries
    report = check(cv, filled)
    assert not report["ok"]
    assert any(
        victim.name in p["message"] and "repair index" in p["message"] for p in report["problems"]
    )
    r = cv("index", "rebuild", "-r", filled, "--json")
    assert r.code == 1
    assert json.loads(r.out)["damaged_index_files"] == [victim.name]
    assert victim.name in r.err and "repair index" in r.err
    assert json.loads(r.out)["objects"] > 0  # the rest is still there
    r = cv("prune", "-r", filled)  # would delete what only the damaged file names
    assert r.code == 1 and "repair index" in r.err
    r = cv("repair", "index", "-r", filled, "--json")
    assert r.code == 0, r.err
    repaired = json.loads(r.out)
    assert repaired["index_files_removed"] == [victim.name]
    assert repaired["objects_indexed"] > 0 and repaired["unreadable"] == []
    assert not victim.exists()
    report = check(cv, filled)
    assert report["ok"] and report["warnings"] == 0, report
    assert_all_export(cv, filled, tmp_path)


def test_every_index_file_lost_is_repaired_from_the_packs(cv, filled, tmp_path) -> None:
    """Packs are self-describing: with no index file at all, every object,
    those in blocks compressed against a dictionary too, is found again."""
    for path in index_files(filled):
        path.unlink()
    assert not check(cv, filled)["ok"]
    r = cv("repair", "index", "-r", filled)
    assert r.code == 0, r.err
    assert "removed 0 damaged" in r.out
    report = check(cv, filled)
    assert report["ok"] and report["warnings"] == 0, report
    assert_all_export(cv, filled, tmp_path)
    assert cv("prune", "-r", filled).code == 0
    assert check(cv, filled)["ok"]
    assert_all_export(cv, filled, tmp_path)


# -- bytes damaged in place: detected with the right kind; what is intact restores ---------
def export_all(cv, repo: Path, tmp_path: Path) -> list[str]:
    """Export every snapshot; each is its night byte for byte or refused with
    one line (never wrong bytes, never a traceback).  Returns the refused."""
    refused = []
    for snap, night in zip(snapshots(cv, repo), NIGHTS, strict=True):
        out = tmp_path / f"{snap}.mbz"
        r = cv("export", "-r", repo, snap, "-o", out)
        if r.code == 0:
            assert gzip.decompress(out.read_bytes()) == gzip.decompress(night.read_bytes())
        else:
            assert r.code == 1 and len(r.err.strip().splitlines()) == 1, r.err
            assert "internal error" not in r.err and ("corrupt" in r.err or "missing" in r.err)
            refused.append(snap)
    return refused


def forget_refused_and_prune(cv, repo: Path, tmp_path: Path, refused: list[str]) -> None:
    """The guide's repair when no copy of a damaged pack exists: forget what
    needs it, prune; everything left checks clean and restores."""
    if refused:
        r = cv("forget", "-r", repo, *[a for s in refused for a in ("--snapshot", s)])
        assert r.code == 0, r.err
    r = cv("prune", "-r", repo)
    assert r.code == 0, r.err
    report = check(cv, repo)
    assert report["ok"], "\n".join(p["severity"] + " " + p["message"] for p in report["problems"])
    assert set(snapshots(cv, repo)).isdisjoint(refused)
    assert export_all_kept(cv, repo, tmp_path) == len(NIGHTS) - len(refused)


def export_all_kept(cv, repo: Path, tmp_path: Path) -> int:
    """Every snapshot left exports to the night it came from, byte for byte."""
    nights = {gzip.decompress(n.read_bytes()) for n in NIGHTS}
    left = snapshots(cv, repo)
    for snap in left:
        out = tmp_path / f"kept-{snap}.mbz"
        r = cv("export", "-r", repo, snap, "-o", out)
        assert r.code == 0, r.err
        assert gzip.decompress(out.read_bytes()) in nights
    return len(left)


def pack_blocks(repo: Path) -> list[tuple[Path, int, int]]:
    """(pack file, block payload offset, payload length) of every block."""
    from coursevault.store.pack import BLOCK_HEAD, ENTRY, iter_blocks, table_start

    out = []
    for pack in sorted((repo / "packs").rglob("*")):
        if not pack.is_file() or pack.name.startswith("."):
            continue
        data = pack.read_bytes()
        for boff, _blen in iter_blocks(data):
            _m, codec, stored_len, _raw, n = BLOCK_HEAD.unpack_from(data, boff)
            out.append((pack, boff + table_start(codec) + n * ENTRY.size, stored_len))
    return out


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def error_kinds(report: dict) -> set[str]:
    return {p["kind"] for p in report["problems"] if p["severity"] == "error"}


@pytest.mark.parametrize("which", [0, 1, -1])
def test_a_flipped_pack_byte_is_corruption(cv, filled, tmp_path, which) -> None:
    pack, start, length = pack_blocks(filled)[which]
    flip(pack, start + length // 2)
    report = check(cv, filled)
    assert not report["ok"]
    assert error_kinds(report) == {"corrupt"}, report
    refused = export_all(cv, filled, tmp_path)
    r = cv("repair", "packs", "-r", filled, "--json")
    assert r.code == 0, r.err
    salvage = json.loads(r.out)
    assert len(salvage["damaged"]) == 1 and salvage["objects_lost"]
    # What export refused stays refused; more may be now: a damaged dictionary
    # object's content, cached on this machine, read its blocks until then.
    after = export_all(cv, filled, tmp_path)
    assert set(refused) <= set(after)
    refused = after
    report = check(cv, filled)
    # what was lost, named by what needs it
    assert error_kinds(report) <= {"missing"}, "\n".join(p["message"] for p in report["problems"])
    forget_refused_and_prune(cv, filled, tmp_path, refused)


def test_a_deleted_pack_is_missing(cv, filled, tmp_path) -> None:
    pack = max(pack_blocks(filled), key=lambda b: b[0].stat().st_size)[0]
    pack.unlink()
    report = check(cv, filled)
    assert not report["ok"]
    assert "missing" in error_kinds(report) and "catalog" not in error_kinds(report), report
    refused = export_all(cv, filled, tmp_path)
    assert refused
    forget_refused_and_prune(cv, filled, tmp_path, refused)


def test_a_copy_that_lost_a_pack_is_refilled_by_sync(cv, filled, tmp_path) -> None:
    """A replica that lost a pack named its objects as stored: `sync` copied
    nothing into it, exit 0, and `repair packs` did nothing.  Now `repair
    packs` drops the missing pack's objects from the index, and `sync
    --refill` from a repository holding them makes the replica whole."""
    hub = tmp_path / "hub"
    assert cv("sync", filled, hub).code == 0
    pack = max(pack_blocks(hub), key=lambda b: b[0].stat().st_size)[0]
    pack.unlink()
    assert not check(cv, hub)["ok"]
    r = cv("sync", filled, hub, "--refill")  # the index still names it: refused
    assert r.code == 1 and "repair packs" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    r = cv("repair", "packs", "-r", hub, "--json")
    assert r.code == 0, r.err
    repaired = json.loads(r.out)
    assert repaired["missing"] == [pack.name] and repaired["objects_dropped"] > 0
    assert error_kinds(check(cv, hub)) == {"missing"}
    r = cv("sync", filled, hub, "--refill", "--json")
    assert r.code == 0, r.err
    synced = json.loads(r.out)
    assert synced["refilled"] == len(NIGHTS) and synced["snapshots"] == 0
    assert synced["objects"] >= repaired["objects_dropped"]
    report = check(cv, hub)
    assert report["ok"], "\n".join(p["message"] for p in report["problems"])
    assert_all_export(cv, hub, tmp_path)


@pytest.mark.parametrize("which", [0, -1])  # the oldest, and the newest (its head holds it)
def test_a_damaged_snapshot_record_is_corruption(cv, filled, tmp_path, which) -> None:
    snap = snapshots(cv, filled)[which]
    victim = filled / "snapshots" / snap[:2] / snap
    flip(victim, 20)
    report = check(cv, filled)
    assert error_kinds(report) == {"corrupt"}, report
    assert any(victim.name in p["message"] for p in report["problems"])
    # a catalog that never read it does not list it as usable
    r = cv("snapshots", "-r", filled, "--json", "--cache-dir", tmp_path / "fresh")
    listed = [row["id"] for row in json.loads(r.out)]
    assert victim.name not in listed and len(listed) == len(NIGHTS) - 1
    # the guide's repair: forget it by its full id (its record is unreadable)
    r = cv("forget", "-r", filled, "--snapshot", victim.name, "--cache-dir", tmp_path / "fresh")
    assert r.code == 0, r.err
    assert not victim.exists()
    assert check(cv, filled)["ok"]
    assert cv("prune", "-r", filled).code == 0  # an exclusive lock does not bring it back
    assert not victim.exists()
    assert export_all_kept(cv, filled, tmp_path) == len(NIGHTS) - 1


def test_a_damaged_dictionary_is_corruption(cv, filled, cache, tmp_path) -> None:
    """A dictionary object damaged makes every block compressed against it
    unreadable: check says so as corruption, export refuses, never guesses."""
    from coursevault.store.backend import LocalBackend
    from coursevault.store.repository import Repository, snapshot_dictionary

    with Repository.open(LocalBackend(filled), cache_dir=tmp_path / "c2") as repo:
        rows = repo.snapshots()
        dict_id = next(d for s in rows if (d := snapshot_dictionary(s.record)) is not None)
        loc = repo.locate(dict_id)
    pack = next((filled / "packs").rglob(loc.pack.hex()))
    block = next(b for b in pack_blocks(filled) if b[0] == pack and b[1] > loc.block_offset)
    flip(pack, block[1] + block[2] // 2)
    report = check(cv, filled)
    assert not report["ok"] and error_kinds(report) == {"corrupt"}, report
    export_all(cv, filled, tmp_path)


def test_repair_packs_salvages_an_encrypted_pack(
    cv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sealed, a pack with one damaged segment failed the whole read: repair
    packs stopped there (exit 1, 'segment N fails authentication') and
    salvaged nothing, where a plain pack's intact objects are kept."""
    monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", "pw")
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "pw")
    repo = tmp_path / "sealed"
    assert cv("init", repo, "--encrypt").code == 0
    from helpers import CORPUS

    big = max(CORPUS, key=lambda p: p.stat().st_size)  # packs of several 64 KiB segments
    assert cv("ingest", "-r", repo, "--course", "big", big).code == 0
    pack = max((p for p in (repo / "packs").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
    assert pack.stat().st_size > 4 * 65536  # several segments: one is damaged
    flip(pack, pack.stat().st_size // 2)
    r = cv("repair", "packs", "-r", repo, "--json")
    assert r.code == 0, r.err
    salvage = json.loads(r.out)
    assert len(salvage["damaged"]) == 1 and salvage["objects_salvaged"] > 0
    assert error_kinds(check(cv, repo)) <= {"missing"}
