"""Fixtures for sync: backends under test, sites (repositories) and real
courses with nights of change.

``BACKENDS`` is the one list of storage kinds the sync tests run over: each
maps a name to a function making a fresh repository location (a string as
users give it) in a test's folder.  Every test takes the ``sites`` fixture,
parametrised over every (source, destination) pair, so a new backend (S3 on
loopback) is one entry here and runs every test folder → S3, S3 → folder
and S3 → S3.  Tests reach storage only through ``api.backend_for``, except
the two that damage a pack file in place (they skip a non-folder source).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CORPUS_DIR
from s3server import MotoS3
from sync_sites import Location, Sites

GEN = Path(__file__).resolve().parents[2] / "benchmarks" / "gen_course.py"
NIGHTS = 3


def folder_location(tmp: Path, name: str) -> str:
    return str(tmp / "sites" / name)


# "s3" is a bucket of the tests' S3 server on loopback (tests/s3server.py),
# made per test in ``sites``
BACKENDS: dict[str, Location | None] = {"folder": folder_location, "s3": None}
PAIRS = [(s, d) for s in BACKENDS for d in BACKENDS]
# "moto": a bucket of moto's S3 server, which honours conditional writes
# (rclone's does not): for tests of writers at once, which rely on them
# (docs/format.md §11); only where a test asks for it
EXTRA: dict[str, Location | None] = {"moto": None}

# three real courses: one with files (simplecertificate), two of XML
COURSES = {
    "cert": "mod_simplecertificate_tests_other_backup-test-course-for-moodle3.1-and-above-fixed.mbz",
    "upload": "admin_tool_uploadcourse_tests_fixtures_backup.mbz",
    "quiz": "mod_quiz_tests_fixtures_moodle_311_quiz.mbz",
}


@pytest.fixture(scope="session")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Nights 1..NIGHTS of each course of COURSES (benchmarks/gen_course.py
    replays a Moodle site's nightly change on the corpus archive)."""
    out = tmp_path_factory.mktemp("nights")
    found = {}
    for key, archive in COURSES.items():
        folder = out / key
        subprocess.run(
            [
                sys.executable,
                str(GEN),
                "nights",
                "--out",
                str(folder),
                "--nights",
                str(NIGHTS),
                "--from",
                str(CORPUS_DIR / archive),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        found[key] = [folder / f"night-{n:02d}.mbz" for n in range(1, NIGHTS + 1)]
    return found


@pytest.fixture(scope="session")
def sync_templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where ``Sites.seeded`` builds its source repositories, once each."""
    return tmp_path_factory.mktemp("templates")


@pytest.fixture(params=PAIRS, ids=[f"{s}-to-{d}" for s, d in PAIRS])
def sites(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sites]:
    source, destination = request.param
    kinds = {name: {**BACKENDS, **EXTRA}[name] for name in (source, destination)}
    moto = MotoS3(tmp_path / "moto") if "moto" in kinds else None
    for kind in ("s3", "moto"):
        if kind in kinds:
            # rclone's server never skips under CI=true, nor does moto
            server = moto if kind == "moto" else request.getfixturevalue("s3_server")
            for name, value in server.env().items():  # in-process and the tests' subprocesses
                monkeypatch.setenv(name, value)
            monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)  # boto3's own, for the API
            bucket = server.make_bucket()
            kinds[kind] = lambda _tmp, name, bucket=bucket: f"s3://{bucket}/{name}"
    src, dst = kinds[source], kinds[destination]
    assert src is not None and dst is not None
    templates = request.getfixturevalue("sync_templates")
    yield Sites(tmp_path, src, dst, str(tmp_path / "cache"), templates)
    if moto is not None:
        moto.stop()
