"""An S3 service misbehaving between coursevault and its bucket (the fault
kinds of tests/s3server.py): what a command sees, and what is left for the
next one."""

from __future__ import annotations

import signal
import time
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


def test_a_request_is_tried_four_times_not_eight(
    cv, s3repo: str, s3_proxy: FaultProxy
) -> None:
    """docs/format.md §11: 4 tries.  botocore's ``max_attempts: 1`` is one
    retry *after* the first try, so each of the 4 was 2 requests (and a
    stalled one 2 read timeouts)."""
    s3_proxy.faults.append(Fault("GET", "/repo/config", 503, "SlowDown"))
    res = cv("snapshots", "-r", s3repo)
    assert res.code == 1 and "SlowDown (HTTP 503)" in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1
    assert sum(line.endswith("/repo/config") for line in s3_proxy.seen) == 4


@pytest.mark.parametrize("conditional", [True, False], ids=["conditional", "read-then-write"])
def test_a_conditional_write_that_landed_but_failed_is_taken_as_done(
    cv, s3repo: str, s3_server: S3Server, s3_proxy: FaultProxy, conditional: bool
) -> None:
    """The service stores the PUT and answers 500 (a gateway timing out).
    Retried blindly, a conditional write meets its own object: ``config``'s
    If-None-Match said "a repository already exists" to the init that made
    it, and a ref's If-Match made one ingest commit two snapshots.  What the
    failed try left is read back instead: its own bytes there, it is done."""
    if conditional:
        s3_proxy.conditional = s3_server.client()  # answered as AWS does
    s3_proxy.faults.append(Fault("PUT", "/repo/config", kind="after", times=1))
    res = cv("init", s3repo)
    assert res.code == 0, res.err
    # the ref's reservation, then its commit; the journal's first entry (the
    # first ingest's index file, the second's snapshot: nothing new to index)
    for skip in (0, 1):
        s3_proxy.faults[:] = [Fault("PUT", "/refs/heads/", kind="after", skip=skip, times=1),
                              Fault("PUT", "/journal/0", kind="after", times=1)]
        res = cv("ingest", "-r", s3repo, str(COURSE))
        assert res.code == 0, res.err
        assert all(f.times == 0 for f in s3_proxy.faults)
    s3_proxy.faults.clear()
    assert cv("snapshots", "-r", s3repo, "--json").out.count('"id"') == 2  # one per ingest
    res = cv("check", "-r", s3repo, "--read-data")
    assert res.code == 0 and "no errors, 0 warnings" in res.out, res.out + res.err


def test_a_lock_that_cannot_be_removed_after_the_work_is_a_warning(
    cv, s3repo: str, s3_proxy: FaultProxy
) -> None:
    """The ingest committed its snapshot, then the service refused to delete
    its lock: exit 1 with the DELETE's error read as a failed backup, and a
    nightly script ran it again.  The work is done: a warning says what is
    left (a lock that goes stale), exit 0."""
    assert cv("init", s3repo).code == 0
    s3_proxy.faults.append(Fault("DELETE", "/locks/", 500))
    res = cv("ingest", "-r", s3repo, str(COURSE))
    assert res.code == 0, res.err
    assert "warning" in res.err and "could not be removed" in res.err, res.err
    s3_proxy.faults.clear()
    assert cv("snapshots", "-r", s3repo, "--json").out.count('"id"') == 1
    res = cv("unlock", "-r", s3repo, "--remove-all")
    assert res.code == 0, res.err


def test_a_short_answer_for_a_ref_is_asked_again(
    cv, s3repo: str, s3_proxy: FaultProxy
) -> None:
    """A ref answered cut short once made the ingest refuse, sending the user
    to `repair refs` for a sound ref."""
    assert cv("init", s3repo).code == 0
    assert cv("ingest", "-r", s3repo, str(COURSE)).code == 0
    s3_proxy.faults.append(Fault("GET", "/refs/heads/", kind="short", times=1))
    res = cv("ingest", "-r", s3repo, str(COURSE))
    assert res.code == 0, res.err
    assert s3_proxy.faults[0].times == 0  # it was answered short
    assert cv("snapshots", "-r", s3repo, "--json").out.count('"id"') == 2


def test_a_short_range_answer_is_asked_again(
    cv, s3repo: str, s3_proxy: FaultProxy, tmp_path: Path
) -> None:
    """A pack's range answered with half its bytes once made export fail as
    damage ("pack ... is truncated"), and check --read-data report it."""
    assert cv("init", s3repo).code == 0
    assert cv("ingest", "-r", s3repo, str(COURSE)).code == 0
    snap = cv("snapshots", "-r", s3repo, "--json").out.split('"id": "')[1].split('"')[0]
    s3_proxy.faults.append(Fault("GET", "/packs/", kind="short", times=1))
    out = tmp_path / "out.mbz"
    res = cv("--cache-dir", str(tmp_path / "cold"), "export", "-r", s3repo, "-o", str(out), snap)
    assert res.code == 0, res.err
    assert s3_proxy.faults[0].times == 0
    assert read_members(out) == read_members(COURSE)


def test_a_stalled_request_fails_over_after_s3_timeout(
    cv, s3repo: str, s3_proxy: FaultProxy
) -> None:
    """A service that stops answering held each try for botocore's 120 s
    (eight minutes before a stalled command failed); ``--s3-timeout`` sets it,
    and the next try goes through."""
    assert cv("init", s3repo).code == 0
    s3_proxy.faults.append(Fault("GET", "/repo/config", kind="stall", stall=5.0, times=1))
    started = time.monotonic()
    res = cv("--s3-timeout", "1", "snapshots", "-r", s3repo)
    assert res.code == 0, res.err
    assert time.monotonic() - started < 4.5 and s3_proxy.faults[0].times == 0
    res = cv("--s3-timeout", "0", "snapshots", "-r", s3repo)
    assert res.code == 2 and "--s3-timeout" in res.err, res.err


def test_no_test_left_sigpipe_to_kill_the_worker() -> None:
    """A stalled answer is written to a socket its client closed: with
    SIGPIPE at its default (mbzcompare's main() set it, called in-process by
    test_modulo) the write killed the pytest worker, and xdist then hung."""
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
