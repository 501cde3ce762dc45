"""A damaged catalog costs time, never a snapshot that cannot be exported
(issue 20, defect 4).

The catalog remembers, in ``cv_stored_inputs``, what each XML member's bytes
were stored as.  A row whose tree or notes were swapped for another row's
once made the next ingest of the same archive exit 0, check clean, and
write a snapshot that export refused ("files.xml: wrote 5062 bytes, header
says 9490").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import blake3
import pytest
from helpers import CORPUS, read_members

from coursevault.errors import CorruptionError
from coursevault.moodle2.archive import iter_members
from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.check import check_repository
from coursevault.store.repository import Repository
from coursevault.tree import xmlmember

VICTIM = "files.xml"


def _archive() -> Path:
    """A corpus course in tgz (whose writer checks sizes, as in the report)
    whose files.xml and course/course.xml differ in size."""
    for path in CORPUS:
        if iter_members(str(path))[0].format != "tgz":
            continue
        members = {n: b for n, d, b in read_members(path) if not d}
        if VICTIM in members and len(members.get("course/course.xml", b"")) not in (
            0,
            len(members[VICTIM]),
        ):
            return path
    raise AssertionError("no tgz corpus archive with files.xml and course/course.xml")


def _key(data: bytes) -> bytes:
    """The catalog key of a member's bytes (as store_xml_member computes it)."""
    return blake3.blake3(xmlmember.CUT_KEY + data).digest()


def _catalog_file(repo: Repository) -> str:
    url = repo.catalog.url
    assert url.startswith("sqlite:///")
    return url[len("sqlite:///") :]


def _row(db: sqlite3.Connection, key: bytes) -> tuple[bytes, str]:
    row = db.execute("SELECT content, info FROM cv_stored_inputs WHERE input_id = ?", (key,))
    found = row.fetchone()
    assert found is not None
    return bytes(found[0]), str(found[1])


def _members(path: Path) -> dict[str, bytes]:
    return {n: b for n, d, b in read_members(path) if not d}


@pytest.mark.parametrize("swapped", ["content", "info", "content and info"])
def test_a_row_swapped_for_another_is_passed_over(
    cv_repo: Repository, tmp_path: Path, swapped: str
) -> None:
    """The reproduction: ingest, swap files.xml's row for course.xml's in the
    catalog file, ingest the same archive again.  It is cut afresh and
    exports byte for byte."""
    archive = _archive()
    members = _members(archive)
    ingest_archive(cv_repo, str(archive))
    victim, donor = _key(members[VICTIM]), _key(members["course/course.xml"])
    with sqlite3.connect(_catalog_file(cv_repo)) as db:
        content, info = _row(db, donor)
        sets = {"content": "content = ?", "info": "info = ?"}
        columns = [c for c in ("content", "info") if c in swapped]
        values = {"content": content, "info": info}
        db.execute(
            f"UPDATE cv_stored_inputs SET {', '.join(sets[c] for c in columns)} WHERE input_id = ?",
            (*(values[c] for c in columns), victim),
        )
    again = ingest_archive(cv_repo, str(archive))
    out = tmp_path / "out.mbz"
    export_snapshot(cv_repo, again.snapshot, str(out))
    assert read_members(out) == read_members(archive)
    assert check_repository(cv_repo).ok
    xml = sum(1 for n in members if n.endswith(".xml"))
    assert again.xml_reused == xml - 1  # all but the damaged one taken from the catalog
    # and the row is whole again: a third night takes it
    assert ingest_archive(cv_repo, str(archive)).xml_reused == xml


def test_a_tree_of_another_size_is_never_committed(
    cv_repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last line of defence: should a row that names another member's
    tree pass its check (here: a check that passes everything), ingest still
    refuses to commit a member whose tree does not render to its size, and
    leaves nothing behind."""
    archive = _archive()
    members = _members(archive)
    first = ingest_archive(cv_repo, str(archive))
    victim, donor = _key(members[VICTIM]), _key(members["course/course.xml"])
    found = cv_repo.stored_inputs.get(donor)
    assert found is not None
    cv_repo.stored_inputs.put(first.snapshot, [(victim, *found)])
    monkeypatch.setattr(xmlmember, "row_holds", lambda *_a: True, raising=False)
    before = (len(cv_repo.snapshots()), cv_repo.stats()["pack_bytes"])
    with pytest.raises(CorruptionError, match=rf"{archive.name}: {VICTIM}: stored as \d+ bytes"):
        ingest_archive(cv_repo, str(archive))
    assert (len(cv_repo.snapshots()), cv_repo.stats()["pack_bytes"]) == before


def test_rows_written_before_rows_were_sealed_are_cut_again(
    cv_repo: Repository, tmp_path: Path
) -> None:
    """An older version's rows carry no seal or size: their members are cut
    once more (and their rows written again, sealed)."""
    archive = _archive()
    members = _members(archive)
    ingest_archive(cv_repo, str(archive))
    with sqlite3.connect(_catalog_file(cv_repo)) as db:
        for key, info in db.execute("SELECT input_id, info FROM cv_stored_inputs").fetchall():
            db.execute(
                "UPDATE cv_stored_inputs SET info = ? WHERE input_id = ?",
                (info.replace('"seal"', '"was"'), key),
            )
    xml = sum(1 for n in members if n.endswith(".xml"))
    assert ingest_archive(cv_repo, str(archive)).xml_reused == 0
    assert ingest_archive(cv_repo, str(archive)).xml_reused == xml


def test_export_refuses_a_document_of_another_length(
    cv_repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a snapshot whose member's tree renders another length be in a
    repository anyway (written before ingest checked, or by a bug), export
    refuses it with one error -- also to zip, whose writer does not count
    (it wrote another member's bytes under files.xml's name)."""
    from coursevault.snapshot import ingest

    archive = _archive()
    members = _members(archive)
    first = ingest_archive(cv_repo, str(archive))
    victim, donor = _key(members[VICTIM]), _key(members["course/course.xml"])
    found = cv_repo.stored_inputs.get(donor)
    assert found is not None
    cv_repo.stored_inputs.put(first.snapshot, [(victim, *found)])
    monkeypatch.setattr(xmlmember, "row_holds", lambda *_a: True, raising=False)
    monkeypatch.setattr(ingest, "check_stored_length", lambda *_a: None, raising=False)
    damaged = ingest_archive(cv_repo, str(archive), when="2030-01-01T00:00")
    for fmt in ("tgz", "zip"):
        out = tmp_path / f"out.{fmt}"
        with pytest.raises(CorruptionError, match=f"{VICTIM}: its document renders"):
            export_snapshot(cv_repo, damaged.snapshot, str(out), fmt=fmt)
        assert not out.exists()
