"""Every real corpus archive ingests and exports back identically, member for member."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from helpers import CORPUS, corpus_ids, logical, read_members, write_tgz

from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.check import check_repository
from coursevault.store.repository import Repository
from coursevault.tree import xmlmember

# XML files stored raw (not element-chunked) per archive: none.  Element
# fragments keep each record's exact bytes, so even the hand-edited fixtures
# (comments, CDATA, trailing spaces, odd indentation) are element-chunked.
EXPECTED_RAW_XML: dict[str, int] = {}


@pytest.mark.parametrize("archive", CORPUS, ids=corpus_ids())
def test_ingest_export_identical(cv_repo: Repository, archive: Path, tmp_path: Path) -> None:
    result = ingest_archive(cv_repo, str(archive))
    assert len(result.raw_xml) == EXPECTED_RAW_XML.get(archive.name, 0), result.raw_xml
    assert result.xml_files > 0 and result.records > 0

    out = tmp_path / "out.mbz"
    exported = export_snapshot(cv_repo, result.snapshot, str(out))
    assert exported.format == result.format
    assert read_members(out) == read_members(archive)
    assert exported.members == len(read_members(archive))
    if result.format == "tgz":  # the tar stream inside is identical too
        with gzip.open(archive) as a, gzip.open(out) as b:
            assert a.read() == b.read()

    again = ingest_archive(cv_repo, str(archive))
    assert again.new_objects == 0 and again.new_bytes == 0
    assert again.snapshot != result.snapshot  # a new snapshot, with the first as parent
    assert cv_repo.read_snapshot(again.snapshot)["parents"] == [result.snapshot]
    assert check_repository(cv_repo, read_data=True).ok


@pytest.mark.parametrize(
    "archive",
    [p for p in CORPUS if p.read_bytes()[:2] != b"\x1f\x8b"][:2]
    + [p for p in CORPUS if p.name.startswith("mod_quiz_tests_fixtures_moodle_311")],
    ids=lambda p: p.name[:40],
)
def test_convert_between_zip_and_tgz(cv_repo: Repository, archive: Path, tmp_path: Path) -> None:
    snap = ingest_archive(cv_repo, str(archive)).snapshot
    as_tgz, as_zip = tmp_path / "a.mbz", tmp_path / "b.mbz"
    tgz = export_snapshot(cv_repo, snap, str(as_tgz), fmt="tgz")
    zipped = export_snapshot(cv_repo, snap, str(as_zip), fmt="zip")
    # what each command reports is what it wrote (a zip has no .ARCHIVE_INDEX)
    assert tgz.members == len(read_members(as_tgz))
    assert zipped.members == len(read_members(as_zip))
    assert as_tgz.read_bytes()[:2] == b"\x1f\x8b" and as_zip.read_bytes()[:2] == b"PK"
    original = logical(read_members(archive))
    assert logical(read_members(as_tgz)) == original
    assert logical(read_members(as_zip)) == original
    names = [n for n, _d, _b in read_members(as_tgz)]
    assert names[0] == ".ARCHIVE_INDEX"  # as Moodle writes every tgz


@pytest.mark.parametrize("archive", CORPUS, ids=corpus_ids())
def test_a_next_night_resumed_from_checkpoints_is_the_whole_cut(
    cv_repo: Repository, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each real archive, then a next night whose XML members each have one
    value changed near their end: the members are resumed from checkpoints
    (every 2 KiB here) and stored as a whole cut stores them."""
    monkeypatch.setattr(xmlmember, "CHECKPOINT_EVERY", 2048)
    members = read_members(archive)
    night2 = []
    changed = 0
    for name, is_dir, data in members:
        if name.endswith(".ARCHIVE_INDEX"):
            continue  # write_tgz writes its own
        hits = list(re.finditer(rb">(\d)", data)) if name.endswith(".xml") else []
        if hits and len(data) > 8192:  # the last value of a number: text, not markup
            at = hits[-1].start(1)
            data = data[:at] + (b"1" if data[at : at + 1] != b"1" else b"2") + data[at + 1 :]
            changed += 1
        night2.append((name, None if is_dir else data))
    second = tmp_path / "night2.mbz"
    write_tgz(second, night2)
    ingest_archive(cv_repo, str(archive))
    result = ingest_archive(cv_repo, str(second))
    if changed:
        assert result.xml_resumed_bytes > 0
    whole = ingest_archive(
        Repository.open(cv_repo.backend, cache_dir=tmp_path / "fresh"), str(second)
    )
    assert whole.xml_resumed_bytes == 0
    assert (
        cv_repo.read_snapshot(result.snapshot)["root"]
        == cv_repo.read_snapshot(whole.snapshot)["root"]
    )
    out = tmp_path / "out.mbz"
    export_snapshot(cv_repo, result.snapshot, str(out))
    assert logical(read_members(out)) == logical(read_members(second))


def test_a_zip_holding_an_archive_index_exports_with_it(
    cv_repo: Repository, tmp_path: Path
) -> None:
    """A zip made from a tgz may keep the tgz's .ARCHIVE_INDEX: ingest
    stored it, and the zip export left it out -- one member short of what
    was ingested (a security pass found it)."""
    import tarfile
    import zipfile

    tgz = next(p for p in CORPUS if p.read_bytes()[:2] == b"\x1f\x8b"
               and read_members(p)[0][0] == ".ARCHIVE_INDEX")
    archive = tmp_path / "z.mbz"
    with tarfile.open(tgz, "r:gz") as tf, zipfile.ZipFile(archive, "w") as zf:
        for m in tf.getmembers():
            data = b"" if m.isdir() else tf.extractfile(m).read()  # type: ignore[union-attr]
            zf.writestr(m.name.rstrip("/") + "/" if m.isdir() else m.name, data)
    snap = ingest_archive(cv_repo, str(archive)).snapshot
    out = tmp_path / "out.mbz"
    exported = export_snapshot(cv_repo, snap, str(out))
    assert read_members(out) == read_members(archive)
    assert exported.members == len(read_members(archive))
