"""Every real corpus archive ingests and exports back identically, member for member."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from helpers import CORPUS, corpus_ids, logical, read_members

from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.check import check_repository
from coursevault.store.repository import Repository

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
    export_snapshot(cv_repo, snap, str(as_tgz), fmt="tgz")
    export_snapshot(cv_repo, snap, str(as_zip), fmt="zip")
    assert as_tgz.read_bytes()[:2] == b"\x1f\x8b" and as_zip.read_bytes()[:2] == b"PK"
    original = logical(read_members(archive))
    assert logical(read_members(as_tgz)) == original
    assert logical(read_members(as_zip)) == original
    names = [n for n, _d, _b in read_members(as_tgz)]
    assert names[0] == ".ARCHIVE_INDEX"  # as Moodle writes every tgz
