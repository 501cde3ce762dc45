"""Zip members whose DOS date no calendar has (month 0 or 13-15, hour 24-31):
PHP's zip writer never makes them, but a flipped bit does, and such an
archive is still readable, so it is stored and comes back with its dates."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from helpers import MINIMAL_BACKUP, read_members

from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.repository import Repository


@pytest.mark.parametrize(
    "date_time",
    [(2020, 13, 1, 0, 0, 0), (2020, 0, 0, 0, 0, 0), (2021, 2, 30, 31, 63, 62)],
    ids=["month-13", "month-0", "hour-31"],
)
def test_odd_dos_dates_are_kept(
    cv_repo: Repository, tmp_path: Path, date_time: tuple[int, ...]
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("moodle_backup.xml", MINIMAL_BACKUP)
        z.writestr(zipfile.ZipInfo("course/course.xml", date_time=date_time), b"<course/>")
    src = tmp_path / "odd.mbz"
    src.write_bytes(buf.getvalue())

    result = ingest_archive(cv_repo, str(src))
    out = tmp_path / "out.mbz"
    export_snapshot(cv_repo, result.snapshot, str(out))

    assert read_members(out) == read_members(src)
    dates = [zi.date_time for zi in zipfile.ZipFile(out).infolist()]
    assert dates == [zi.date_time for zi in zipfile.ZipFile(src).infolist()]
