"""A backup whose files.xml names a path for a content hash.

``os.path.join`` restarts at an absolute part, so a contenthash of
``/some/where/file`` (with its member at ``files//s//some/where/file``,
which an ingest stores as it is) made the restore write the member's
bytes at ``/some/where/file``, outside the site -- then refuse the
content for its sha1 and leave the file there.  A content hash is 40 hex
digits or the backup is refused (exit 2), with nothing written anywhere."""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .clirun import refused_both_ways, run, run_json
from .tinysite import Tiny

PAYLOAD = b"#!/bin/sh\necho not the site's\n"


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder whose path fits files.contenthash's 40 characters (a longer
    one is refused as too long for the column, after it was written)."""
    folder = Path(tempfile.mkdtemp(prefix="cv", dir="/tmp"))
    yield folder
    shutil.rmtree(folder)


def test_a_content_hash_that_is_a_path_writes_nothing(
    tiny: Tiny, tmp_path: Path, outside: Path
) -> None:
    target = outside / "written"
    assert len(str(target)) <= 40
    run_json("-r", tiny.repo, "export", tiny.snapshot, "-o", tmp_path / "tiny.mbz")
    out = io.BytesIO()
    with tarfile.open(tmp_path / "tiny.mbz") as src, tarfile.open(fileobj=out, mode="w:gz") as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            if data is not None and info.name.removeprefix("./") == "files.xml":
                start = data.index(b"<contenthash>") + len(b"<contenthash>")
                data = data[:start] + str(target).encode() + data[start + 40:]
            if data is not None:
                info.size = len(data)
                dst.addfile(info, io.BytesIO(data))
            else:
                dst.addfile(info)
        member = tarfile.TarInfo(f"files/{str(target)[:2]}/{target}")
        member.size = len(PAYLOAD)
        dst.addfile(member, io.BytesIO(PAYLOAD))
    (tmp_path / "crafted.mbz").write_bytes(out.getvalue())
    repo = tmp_path / "repo"
    assert run("-r", repo, "init").code == 0
    run_json("-r", repo, "ingest", tmp_path / "crafted.mbz", "--course", "crafted")
    site = tiny.copy(tmp_path / "site")
    before = site.state()
    refused_both_ways(repo, "crafted@latest", site.url, site.dataroot, "is not a SHA-1")
    assert not target.exists(), "the restore wrote outside the site"
    assert not before.differences(site.state())
