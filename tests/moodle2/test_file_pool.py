"""files/<sha1> members whose content does not hash to their name: stored
(export gives back what was read) with one warning naming archive and member,
and counted in ``ingest --json``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import CORPUS, MINIMAL_BACKUP, read_members, write_tgz

from coursevault.cli.app import main
from coursevault.moodle2.filepool import claimed_contenthash

GOOD = b"a picture's bytes"
GOOD_HASH = hashlib.sha1(GOOD).hexdigest()
CLAIMED = hashlib.sha1(b"what the file was").hexdigest()


def test_pool_names() -> None:
    assert claimed_contenthash(f"files/{GOOD_HASH[:2]}/{GOOD_HASH}") == GOOD_HASH
    assert claimed_contenthash(f"files/00/{GOOD_HASH}") is None  # not where Moodle puts it
    assert claimed_contenthash(f"files/{GOOD_HASH[:2]}/{GOOD_HASH}.txt") is None
    assert claimed_contenthash("course/course.xml") is None


def test_a_file_whose_content_is_not_its_name_is_stored_with_a_warning(
    seeded_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("in").mkdir()
    misnamed = f"files/{CLAIMED[:2]}/{CLAIMED}"
    write_tgz(
        Path("in/pool.mbz"),
        [
            ("moodle_backup.xml", MINIMAL_BACKUP),
            ("files/", None),
            (f"files/{GOOD_HASH[:2]}/{GOOD_HASH}", GOOD),
            (misnamed, b"what the file is now"),
        ],
    )
    capsys.readouterr()
    code = main(["ingest", "-r", str(seeded_repo), "--json", "in/pool.mbz"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err.count("\n") == 1, err
    assert err.startswith(f"coursevault: warning: in/pool.mbz: {misnamed}: content does not hash")
    result = json.loads(out)
    assert result["files_misnamed"] == 1
    wrong = hashlib.sha1(b"what the file is now").hexdigest()
    assert result["misnamed_files"] == [{"member": misnamed, "sha1": wrong}]

    assert main(["export", "-r", str(seeded_repo), "-o", "out.mbz", result["snapshot"]]) == 0
    assert read_members("out.mbz") == read_members("in/pool.mbz")


def test_moodles_own_files_are_not_reported(
    seeded_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    course = next(c for c in CORPUS if "moodle3.1-and-above" in c.name)  # 8 pool files
    capsys.readouterr()
    assert main(["ingest", "-r", str(seeded_repo), "--json", str(course)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out)["files_misnamed"] == 0
