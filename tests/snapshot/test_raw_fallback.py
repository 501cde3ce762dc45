"""XML the chunker cannot cut into exact slices is kept raw, exactly; hand edits are not."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import MINIMAL_BACKUP, read_members, tar_stream, write_tgz

from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.repository import Repository

ODD = {
    "utf-16": '<?xml version="1.0" encoding="UTF-16"?>\n<a>\n  <b><c>1</c></b>\n</a>'.encode(
        "utf-16"
    ),
    "namespaces": b'<?xml version="1.0"?>\n<a xmlns:q="urn:q">\n  <q:b><c>1</c></q:b>\n</a>',
    "marker-text": b'<?xml version="1.0"?>\n<a>\n  <b><c>&lt;_cvlist/&gt;</c></b>\n</a>',
}
FINE = {
    "self-closed": b'<?xml version="1.0" encoding="UTF-8"?>\n<a>\n  <b/>\n  <c>1</c>\n</a>',
    "char-ref": b'<?xml version="1.0" encoding="UTF-8"?>\n<a>\n  <b>&#65;</b>\n</a>',
    "single-quotes": b'<?xml version="1.0" encoding="UTF-8"?>\n<a>\n  <b x=\'1\'>t</b>\n</a>',
    "tab-in-attr": b'<?xml version="1.0" encoding="UTF-8"?>\n<a>\n  <b x="1\t2">t</b>\n</a>',
    "comment": b'<?xml version="1.0" encoding="UTF-8"?>\n<a>\n  <!-- hi -->\n  <b>t</b>\n</a>\n',
    "cdata": b'<?xml version="1.0" encoding="UTF-8"?>\n<a>\n  <b><![CDATA[x < y]]></b>\n</a>',
    "odd-indent": b'<?xml version="1.0" encoding="UTF-8"?>\n<a>\n    <b>t</b>  \n</a>',
}


@pytest.mark.parametrize("name", sorted(ODD))
def test_unreproducible_xml_is_stored_raw_and_exported_exactly(
    cv_repo: Repository, tmp_path: Path, name: str
) -> None:
    archive = tmp_path / "odd.mbz"
    write_tgz(archive, [("moodle_backup.xml", MINIMAL_BACKUP), ("odd.xml", ODD[name])])
    result = ingest_archive(cv_repo, str(archive))
    assert [r["member"] for r in result.raw_xml] == ["odd.xml"]
    assert result.raw_xml[0]["reason"]
    out = tmp_path / "out.mbz"
    export_snapshot(cv_repo, result.snapshot, str(out))
    assert tar_stream(out) == tar_stream(archive)
    again = ingest_archive(cv_repo, str(archive))  # a failed attempt is never trusted later
    assert [r["member"] for r in again.raw_xml] == ["odd.xml"]
    # both members came from the catalog's cache, which remembers why odd.xml is raw
    assert again.xml_reused == 2 and again.raw_xml == result.raw_xml
    assert (
        cv_repo.read_snapshot(again.snapshot)["root"]
        == cv_repo.read_snapshot(result.snapshot)["root"]
    )


@pytest.mark.parametrize("name", sorted(FINE))
def test_hand_edits_are_element_chunked(cv_repo: Repository, tmp_path: Path, name: str) -> None:
    archive = tmp_path / "fine.mbz"
    write_tgz(archive, [("moodle_backup.xml", MINIMAL_BACKUP), ("fine.xml", FINE[name])])
    result = ingest_archive(cv_repo, str(archive))
    assert result.raw_xml == []
    out = tmp_path / "out.mbz"
    export_snapshot(cv_repo, result.snapshot, str(out))
    assert read_members(out) == read_members(archive)
