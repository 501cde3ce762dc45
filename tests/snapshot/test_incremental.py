"""A night's growth is what changed: unchanged subtrees are hashes already stored."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from helpers import CORPUS, read_members, write_tgz

from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.check import check_repository
from coursevault.store.ids import ObjectId, ObjectType
from coursevault.store.prune import prune_repository
from coursevault.store.repository import Repository
from coursevault.store.treecodec import tree_refs
from coursevault.tree.xmltree import ChunkResult, XmlChunker


def reachable(repo: Repository, snap: str) -> set[ObjectId]:
    seen: set[ObjectId] = set()
    stack = [bytes.fromhex(repo.read_snapshot(snap)["root"])]
    while stack:
        oid = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        kind, payload = repo.get(oid)
        if kind == ObjectType.TREE:
            stack.extend(tree_refs(payload))
    return seen


def _next_night(src: Path, dst: Path) -> None:
    """Change one record's field and the backup date, as a real next backup would."""
    out: list[tuple[str, bytes | None]] = []
    changed = False
    for name, is_dir, data in read_members(src):
        if name.endswith(".ARCHIVE_INDEX"):
            continue
        if name.endswith("moodle_backup.xml"):
            data = data.replace(b"<backup_date>", b"<backup_date>9", 1)
        elif not changed and name.endswith("questions.xml") and b"<questiontext>" in data:
            data = data.replace(b"<questiontext>", b"<questiontext>EDITED ", 1)
            changed = True
        out.append((name, None if is_dir else data))
    assert changed
    write_tgz(dst, out)


def _two_nights(tmp_path: Path) -> tuple[Path, Path]:
    """A real corpus course, and its next night (one question edited)."""
    source = next(p for p in CORPUS if "coderunner" in p.name)
    night1, night2 = tmp_path / "n1.mbz", tmp_path / "n2.mbz"
    write_tgz(night1, [(n, None if d else b) for n, d, b in read_members(source)])
    _next_night(night1, night2)
    return night1, night2


def test_second_night_shares_unchanged_nodes(cv_repo: Repository, tmp_path: Path) -> None:
    night1, night2 = _two_nights(tmp_path)
    first = ingest_archive(cv_repo, str(night1))
    second = ingest_archive(cv_repo, str(night2))
    assert second.new_objects < first.new_objects / 20
    assert second.new_bytes < first.new_bytes / 10
    a, b = reachable(cv_repo, first.snapshot), reachable(cv_repo, second.snapshot)
    assert len(a & b) / len(b) > 0.9
    assert cv_repo.read_snapshot(second.snapshot)["parents"] == [first.snapshot]


def _cut_counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the XML members the chunker cuts (closes)."""
    calls = [0]
    real = XmlChunker.close

    def close(self: XmlChunker) -> ChunkResult:
        calls[0] += 1
        return real(self)

    monkeypatch.setattr(XmlChunker, "close", close)
    return calls


def test_unchanged_members_are_not_cut_again(
    cv_repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    night1, night2 = _two_nights(tmp_path)
    cuts = _cut_counter(monkeypatch)
    first = ingest_archive(cv_repo, str(night1))
    assert first.xml_reused == 0 and cuts[0] == first.xml_files
    second = ingest_archive(cv_repo, str(night2))
    # only the two members that changed are cut: moodle_backup.xml and questions.xml
    assert cuts[0] == first.xml_files + 2
    assert second.xml_reused == second.xml_files - 2
    assert (second.elements, second.records) == (first.elements, first.records)
    # a member taken from the catalog is the same tree the chunker would make
    fresh = Repository.open(cv_repo.backend, cache_dir=tmp_path / "other-cache")
    again = ingest_archive(fresh, str(night2))  # another catalog: everything cut anew
    assert again.xml_reused == 0 and again.new_objects <= 1  # the snapshot only
    assert (
        fresh.read_snapshot(again.snapshot)["root"]
        == cv_repo.read_snapshot(second.snapshot)["root"]
    )
    out = tmp_path / "out.mbz"
    export_snapshot(cv_repo, second.snapshot, str(out))
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(night2.read_bytes())


def test_the_cache_of_cut_members_follows_its_snapshots_through_prunes(
    cv_repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nightly forget and prune leave the last night's members known; a
    forgotten night's are not used (a prune may keep a tree of it without
    its children, as a dictionary's content)."""
    night1, night2 = _two_nights(tmp_path)
    first = ingest_archive(cv_repo, str(night1))
    second = ingest_archive(cv_repo, str(night2))
    cv_repo.delete_snapshot(first.snapshot)  # forget night 1, keep night 2
    prune_repository(cv_repo)
    cuts = _cut_counter(monkeypatch)
    kept = ingest_archive(cv_repo, str(night2))
    assert kept.xml_reused == kept.xml_files and cuts[0] == 0
    cv_repo.delete_snapshot(second.snapshot)
    cv_repo.delete_snapshot(kept.snapshot)
    prune_repository(cv_repo)
    again = ingest_archive(cv_repo, str(night1))
    assert again.xml_reused == 0 and cuts[0] == again.xml_files
    assert check_repository(cv_repo, read_data=True).ok
    out = tmp_path / "out.mbz"
    export_snapshot(cv_repo, again.snapshot, str(out))
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(night1.read_bytes())
