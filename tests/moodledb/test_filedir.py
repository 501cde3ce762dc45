"""The file store side of a restore (moodledb/filedir.py): a dry run refuses
what the restore itself would refuse."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from coursevault.errors import BadInputError
from coursevault.moodledb.filedir import Staging


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_content_that_does_not_match_its_sha1_is_refused(tmp_path: Path, dry_run: bool) -> None:
    """A dry run staged nothing and checked nothing: it said yes to a backup
    whose restore then failed on the content."""
    (tmp_path / "filedir").mkdir()
    staging = Staging(str(tmp_path), dry_run=dry_run)
    good = b"a file's content"
    sha1 = hashlib.sha1(good).hexdigest()
    staging.stage(sha1, lambda f: f.write(good), "files/good")
    with pytest.raises(BadInputError, match="files/bad: content does not match its sha1"):
        staging.stage("0" * 40, lambda f: f.write(good), "files/bad")
    assert list(staging.staged) == [sha1]
    staging.discard()
    assert not list((tmp_path / "filedir").iterdir())
