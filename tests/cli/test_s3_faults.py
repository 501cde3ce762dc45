"""An S3 service misbehaving between coursevault and its bucket (the fault
kinds of tests/s3server.py): what a command sees, and what is left for the
next one."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import CORPUS, read_members
from s3server import Fault, FaultProxy, S3Server

COURSE = next(p for p in CORPUS if "moodle_311_quiz" in p.name)


@pytest.fixture
def s3repo(
    s3_server: S3Server, s3_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> str:
    for name, value in s3_server.env(s3_proxy.endpoint).items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_server.make_bucket()}/repo"


def test_a_short_answer_is_not_kept_for_the_next_command(
    cv, s3repo: str, s3_proxy: FaultProxy, tmp_path: Path
) -> None:
    """A 200 whose body is cut short (its Content-Length to match) of an
    index file or a snapshot record: its hash tells, and the file is read
    again.  The disk cache kept the short copy, and every later command of
    that machine took the sound files for damaged ones: export failed ("object
    ... is missing: not in any index"), the snapshot was left out of every
    listing, until the cache folder was deleted."""
    assert cv("init", s3repo).code == 0
    assert cv("ingest", "-r", s3repo, str(COURSE)).code == 0
    snap = cv("snapshots", "-r", s3repo, "--json").out.split('"id": "')[1].split('"')[0]
    other = tmp_path / "another-machine"  # nothing of the repository cached yet
    s3_proxy.faults += [Fault("GET", "/index/", kind="short", times=1),
                        Fault("GET", "/snapshots/", kind="short", times=1)]
    for attempt in ("faulty", "after"):
        out = tmp_path / f"{attempt}.mbz"
        res = cv("--cache-dir", str(other), "export", "-r", s3repo, "-o", str(out), snap)
        assert res.code == 0 and res.err == "", (attempt, res.err)
        assert read_members(out) == read_members(COURSE)
        assert all(f.times == 0 for f in s3_proxy.faults)  # both were answered short


def test_a_short_pack_read_by_sync_is_read_again(
    cv, s3repo: str, s3_proxy: FaultProxy, tmp_path: Path
) -> None:
    """sync reads a remote source's packs whole into its cache first: a
    short one failed that sync and, kept, every later one ("pack ... at the
    source: block length ... does not match its header") while the source
    checked clean."""
    assert cv("init", s3repo).code == 0
    assert cv("ingest", "-r", s3repo, str(COURSE)).code == 0
    other = tmp_path / "another-machine"
    s3_proxy.faults.append(Fault("GET", "/packs/", kind="short", times=1))
    for attempt in ("faulty", "after"):
        res = cv("--cache-dir", str(other), "sync", s3repo, str(tmp_path / "copy"))
        assert res.code == 0, (attempt, res.err)
    assert s3_proxy.faults[0].times == 0
    res = cv("check", "-r", str(tmp_path / "copy"), "--read-data")
    assert res.code == 0 and "no errors" in res.out, res.out + res.err
