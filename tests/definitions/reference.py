"""The reference site as tests/definitions' tests use it: where it is, its
databases (skipped when absent, an error under CI=true), the members of
Moodle's own backups of its courses, and how two members first differ.

Plain code, not fixtures: no test may import a conftest.  tests/definitions
is no package, so its modules import this one as ``reference`` (pytest puts
the folder on sys.path, as does running a test file alone).
"""

from __future__ import annotations

import csv
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coursevault.errors import SiteError
from coursevault.moodledb.site import SiteReader, open_engine, read_transaction

SITE = Path(os.environ.get("COURSEVAULT_REFSITE_DIR") or
            Path(__file__).resolve().parents[2].parent / "shared" / "moodle-site")
POSTGRES = os.environ.get("COURSEVAULT_REFSITE_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1/cv_refsite")
MARIADB = os.environ.get("COURSEVAULT_REFSITE_MARIADB",
                         "mysql+pymysql://root@127.0.0.1/cv_refsite")
DATAROOT = os.environ.get("COURSEVAULT_REFSITE_DATAROOT", str(Path(__file__).resolve().parents[2] / ".cache/refsite/dataroot"))


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI=true (CI must test what it claims to)."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def site_courses() -> list[dict[str, str]]:
    """courses.tsv's courses that exist (a failed restore has no ids); none
    without the site."""
    path = SITE / "courses.tsv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r["courseid"]]


def database(url: str, required: bool) -> str:
    """The URL of a loaded copy of the site; skips without one (fails under
    CI=true when ``required``)."""
    try:
        with read_transaction(open_engine(url), "mdl_") as reader:
            reader.one("config", {"name": "version"})
    except SiteError as exc:
        if required and os.environ.get("CI") == "true":
            pytest.fail(f"reference site database unavailable under CI: {exc}")
        pytest.skip(f"reference site database unavailable: {exc}")
    return url


def backup_members(courseid: str | int,
                   keep: Callable[[str], bool] = lambda _name: True) -> dict[str, bytes]:
    """The file members of Moodle's backup of the course (by PostgreSQL id)
    whose tar name ``keep`` accepts, named without a leading ``./``."""
    path = next((SITE / "backups").glob(f"c{int(courseid):03d}-*.mbz"))
    out = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile() and keep(member.name):
                data = tar.extractfile(member)
                assert data is not None
                out[member.name.removeprefix("./")] = data.read()
    return out


def first_difference(theirs: bytes, mine: bytes) -> str:
    """The first line where Moodle's member and ours differ."""
    a, b = theirs.decode().splitlines(), mine.decode().splitlines()
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"line {i + 1}: moodle {x.strip()!r} / ours {y.strip()!r}"
    return f"lengths differ: moodle {len(a)} lines, ours {len(b)}"


def postgres_reader() -> Iterator[SiteReader]:
    """A reader of the PostgreSQL site, for a module-scoped ``site_reader``
    fixture: COURSEVAULT_REFSITE_POSTGRES, else the team's default copy."""
    url = os.environ.get("COURSEVAULT_REFSITE_POSTGRES")
    if not url:
        try:
            with read_transaction(open_engine(POSTGRES), "mdl_"):
                url = POSTGRES
        except Exception:
            unavailable("the reference site database is not there (COURSEVAULT_REFSITE_POSTGRES)")
    assert url is not None
    with read_transaction(open_engine(url), "mdl_") as reader:
        yield reader
