"""Every command on an ``s3://`` repository, against a real S3 server on
loopback (``rclone serve s3``, tests/s3server.py; never skipped under
CI=true), reached through a proxy that counts requests and can fail them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import CORPUS, read_members
from s3server import Fault, FaultProxy, S3Server

# three courses of the corpus, small enough for a quick test
COURSES = [
    next(p for p in CORPUS if "moodle2.3-and-above" in p.name),
    next(p for p in CORPUS if "moodle_311_quiz" in p.name),
    next(p for p in CORPUS if "sandbox-test" in p.name),
]
MORE = [p for p in CORPUS if p not in COURSES and p.stat().st_size < 200_000][:6]


@pytest.fixture
def s3repo(
    s3_server: S3Server, s3_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> str:
    """The location of a repository in a fresh bucket; the AWS variables and
    COURSEVAULT_S3_ENDPOINT lead the in-process CLI to it through the proxy."""
    for name, value in s3_server.env(s3_proxy.endpoint).items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_server.make_bucket()}/site/repo"


def snapshots(cv: Callable[..., object], repo: str) -> list[dict[str, object]]:
    res = cv("snapshots", "-r", repo, "--json")
    assert res.code == 0, res.err  # type: ignore[attr-defined]
    return list(json.loads(res.out))  # type: ignore[attr-defined]


def test_every_command_on_an_s3_repository(cv, s3repo: str, tmp_path: Path) -> None:
    res = cv("init", s3repo, "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["location"] == s3repo
    assert cv("init", s3repo).code == 2  # one exists there now

    assert cv("ingest", "-r", s3repo, *map(str, COURSES)).code == 0
    snaps = snapshots(cv, s3repo)
    assert len(snaps) == 3
    by_file = {s["source"]["file"]: s for s in snaps}  # type: ignore[index]
    for source in COURSES:
        snap = by_file[source.name]
        out = tmp_path / f"{snap['id']}.mbz"
        res = cv("export", "-r", s3repo, "-o", str(out), str(snap["id"]))
        assert res.code == 0, res.err
        assert read_members(out) == read_members(source)  # byte-identical members

    course = str(snaps[0]["course"])
    res = cv("log", "-r", s3repo, course, "--json")
    assert res.code == 0, res.err
    assert [e["id"] for e in json.loads(res.out)] == [snaps[0]["id"]]

    res = cv("check", "-r", s3repo, "--read-data")
    assert res.code == 0, res.err
    assert "no errors" in res.out

    gone = snaps[1]
    assert cv("forget", "-r", s3repo, "--snapshot", str(gone["id"])).code == 0
    res = cv("prune", "-r", s3repo)
    assert res.code == 0, res.err
    assert "freed" in res.out
    assert [s["id"] for s in snapshots(cv, s3repo)] == [snaps[0]["id"], snaps[2]["id"]]
    res = cv("check", "-r", s3repo, "--read-data")
    assert res.code == 0 and "no errors" in res.out, res.out + res.err


def test_a_new_machine_reads_what_another_wrote(cv, s3repo: str, tmp_path: Path) -> None:
    """Nothing of a repository in S3 is local: a second cache folder (another
    machine) lists and exports what the first ingested."""
    assert cv("init", s3repo).code == 0
    assert cv("ingest", "-r", s3repo, str(COURSES[0])).code == 0
    other = tmp_path / "other-machine"
    snap = snapshots(cv, s3repo)[0]
    out = tmp_path / "there.mbz"
    res = cv("export", "-r", s3repo, "--cache-dir", str(other), "-o", str(out), str(snap["id"]))
    assert res.code == 0, res.err
    assert read_members(out) == read_members(COURSES[0])


def test_a_failed_pack_write_fails_the_command_and_leaves_no_snapshot(
    cv, s3repo: str, s3_proxy: FaultProxy
) -> None:
    """restic #3646: S3 answered 500 to pack uploads and the backup exited 0."""
    assert cv("init", s3repo).code == 0
    s3_proxy.faults.append(Fault("PUT", "/packs/"))
    res = cv("ingest", "-r", s3repo, str(COURSES[0]))
    assert res.code == 1
    line = res.err.strip()
    assert len(line.splitlines()) == 1, line
    assert "S3 PutObject" in line and "/packs/" in line and "HTTP 500" in line, line
    assert "corrupt" not in line
    s3_proxy.faults.clear()
    assert snapshots(cv, s3repo) == []
    res = cv("check", "-r", s3repo)
    assert res.code == 0, res.err


def test_an_unreachable_service_is_one_line_naming_the_key(
    cv, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    for name, value in s3_server.env("http://127.0.0.1:9").items():  # discard port: refused
        monkeypatch.setenv(name, value)
    res = cv("snapshots", "-r", "s3://nobucket/repo")
    assert res.code == 1
    assert len(res.err.strip().splitlines()) == 1
    assert "S3 GetObject s3://nobucket/repo/config" in res.err


def test_a_missing_bucket_is_said_so(cv, s3_server: S3Server, s3repo: str) -> None:
    res = cv("init", "s3://no-such-bucket/repo")
    assert res.code == 1
    assert "NoSuchBucket" in res.err and "create the bucket" in res.err


def warm_requests(cv, s3repo: str, s3_proxy: FaultProxy, course: str, out: Path) -> int:
    """Requests of one course's ``log`` and ``export`` on a warm cache: each
    run once to warm it, then counted."""
    counts = []
    for _ in range(2):
        s3_proxy.clear()
        assert cv("log", "-r", s3repo, course).code == 0
        res = cv("export", "-r", s3repo, "-o", str(out), f"{course}@latest")
        assert res.code == 0, res.err
        counts.append(s3_proxy.total())
    return counts[1]


def test_a_warm_one_course_command_does_not_grow_with_the_courses(
    cv, s3repo: str, s3_proxy: FaultProxy, tmp_path: Path
) -> None:
    assert cv("init", s3repo).code == 0
    assert cv("ingest", "-r", s3repo, str(COURSES[0])).code == 0
    course = str(snapshots(cv, s3repo)[0]["course"])
    out = tmp_path / "out.mbz"
    with_one = warm_requests(cv, s3repo, s3_proxy, course, out)

    assert len(MORE) >= 5
    assert cv("ingest", "-r", s3repo, *map(str, [*COURSES[1:], *MORE])).code == 0
    assert len({s["course"] for s in snapshots(cv, s3repo)}) == 1 + 2 + len(MORE)
    with_many = warm_requests(cv, s3repo, s3_proxy, course, out)
    assert with_many == with_one
    # log: config, the journal's checkpoint and what follows it (issue 26);
    # export: the same and its shared lock (write, list, read, delete) -- no
    # pack, index or snapshot read
    assert with_one <= 10, s3_proxy.seen
    for request in s3_proxy.seen:
        assert "list-type=2" in request or any(
            f"/repo/{what}" in request for what in ("config", "locks/", "journal/")), request
    assert read_members(out) == read_members(COURSES[0])


def test_history_and_maintenance_commands_on_s3(
    cv, s3repo: str, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    night1 = write_course(tmp_path / "n1.mbz", {1: [(1, "hello")]}, date=1700000000)
    night2 = write_course(tmp_path / "n2.mbz", {1: [(1, "hello"), (2, "again")]}, date=1700086400)
    assert cv("init", s3repo).code == 0
    assert cv("ingest", "-r", s3repo, str(night1), str(night2)).code == 0
    course = str(snapshots(cv, s3repo)[0]["course"])

    res = cv("ls", "-r", s3repo, f"{course}@latest")
    assert res.code == 0 and "activities/forum_5/forum.xml" in res.out, res.err
    res = cv("cat", "-r", s3repo, f"{course}@latest", "activities/forum_5/forum.xml")
    assert res.code == 0 and "again" in res.out, res.err
    res = cv("diff", "-r", s3repo, f"{course}@~1", f"{course}@latest")
    assert res.code == 0 and "forum_5" in res.out, res.out + res.err
    res = cv("stats", "-r", s3repo, "--json")
    assert res.code == 0 and json.loads(res.out)["snapshots"] == 2, res.err

    for command in (("index", "rebuild"), ("repair", "index"), ("unlock",)):
        res = cv(*command, "-r", s3repo)
        assert res.code == 0, (command, res.err)
    res = cv("check", "-r", s3repo, "--read-data")
    assert res.code == 0 and "no errors" in res.out, res.out + res.err


BIG = next(p for p in CORPUS if "moodle2cc" in p.name)  # 6.4 MB: several 1 MiB packs


def pack_objects(s3_server: S3Server, s3repo: str) -> list[str]:
    bucket, prefix = s3repo.removeprefix("s3://").split("/", 1)
    listing = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/packs/")
    return [o["Key"] for o in listing.get("Contents", ())]


def test_packs_upload_in_parallel_and_export_exact(
    cv, s3repo: str, s3_server: S3Server, tmp_path: Path
) -> None:
    assert cv("init", s3repo, "--pack-size", "1").code == 0
    res = cv("--s3-connections", "4", "ingest", "-r", s3repo, str(BIG))
    assert res.code == 0, res.err
    assert len(pack_objects(s3_server, s3repo)) >= 4
    out = tmp_path / "big.mbz"
    res = cv("export", "-r", s3repo, "-o", str(out), str(snapshots(cv, s3repo)[0]["id"]))
    assert res.code == 0, res.err
    assert read_members(out) == read_members(BIG)
    assert cv("check", "-r", s3repo, "--read-data").code == 0


def test_a_pack_upload_failing_among_others_fails_and_leaves_nothing(
    cv, s3repo: str, s3_server: S3Server, s3_proxy: FaultProxy
) -> None:
    """Two packs go through, the third gets 500s (every retry too): the
    command fails, and the packs that did land are deleted again."""
    assert cv("init", s3repo, "--pack-size", "1").code == 0
    s3_proxy.faults.append(Fault("PUT", "/packs/", skip=2))
    res = cv("ingest", "-r", s3repo, str(BIG))
    assert res.code == 1
    assert "S3 PutObject" in res.err and "HTTP 500" in res.err, res.err
    s3_proxy.faults.clear()
    assert snapshots(cv, s3repo) == []
    assert pack_objects(s3_server, s3repo) == []


@pytest.mark.parametrize("encrypted", [False, True])
def test_check_sees_damage_on_the_service_that_the_cache_does_not_hold(
    cv,
    s3repo: str,
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    encrypted: bool,
) -> None:
    if encrypted:  # the sealing wraps the cache: check must still go round it
        monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", "pw")
        monkeypatch.setenv("COURSEVAULT_PASSWORD", "pw")
    assert cv("init", s3repo, *(["--encrypt"] if encrypted else [])).code == 0
    assert cv("ingest", "-r", s3repo, str(COURSES[0])).code == 0
    snap = str(snapshots(cv, s3repo)[0]["id"])
    assert cv("export", "-r", s3repo, "-o", str(tmp_path / "a.mbz"), snap).code == 0  # cached
    [pack] = pack_objects(s3_server, s3repo)
    bucket = s3repo.removeprefix("s3://").split("/", 1)[0]
    stored = s3_server.folder / "data" / bucket / pack  # the file behind the object
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    # the warm cache still exports the good copy it read before
    assert cv("export", "-r", s3repo, "-o", str(tmp_path / "b.mbz"), snap).code == 0
    res = cv("check", "-r", s3repo, "--read-data")
    assert res.code == 1, res.out + res.err
    said = res.out + res.err
    assert ("fails authentication" if encrypted else "corrupt") in said, said


def test_an_encrypted_repository_in_a_bucket(
    cv, s3repo: str, s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init --encrypt on s3://: the bucket's objects hold none of the
    courses' text, the course keys are not in the object names, and every
    export is byte-identical (issue 25: encryption on S3)."""
    monkeypatch.setenv("COURSEVAULT_NEW_PASSWORD", "bucket pw")
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "bucket pw")
    assert cv("init", s3repo, "--encrypt").code == 0
    assert cv("ingest", "-r", s3repo, *map(str, COURSES)).code == 0
    snaps = snapshots(cv, s3repo)
    for snap in snaps:
        out = tmp_path / f"{snap['id']}.mbz"
        assert cv("export", "-r", s3repo, "-o", str(out), str(snap["id"])).code == 0
        by_name = {p.name: p for p in COURSES}
        assert read_members(out) == read_members(by_name[str(snap["source"]["file"])])
    bucket = s3repo.removeprefix("s3://").split("/", 1)[0]  # the server holds other tests' too
    stored = [p for p in (s3_server.folder / "data" / bucket).rglob("*") if p.is_file()]
    names = " ".join(str(p) for p in stored)
    contents = b"".join(p.read_bytes() for p in stored)
    for snap in snaps:
        assert str(snap["course"]) not in names
    assert b"<moodle_backup>" not in contents and b"activities/" not in contents
    res = cv("check", "-r", s3repo, "--read-data")
    assert res.code == 0 and "no errors" in res.out, res.out + res.err
    monkeypatch.setenv("COURSEVAULT_PASSWORD", "not it")
    assert cv("snapshots", "-r", s3repo).code == 12


def test_read_only_credentials_export_and_check_with_no_lock(
    cv, s3repo: str, s3_proxy: FaultProxy, tmp_path: Path
) -> None:
    """A restore host whose S3 key may only read: the service answers
    AccessDenied to every write, the lock's too.  --no-lock reads without one."""
    assert cv("init", s3repo).code == 0
    assert cv("ingest", "-r", s3repo, str(COURSES[0])).code == 0
    [snap] = snapshots(cv, s3repo)
    s3_proxy.faults += [Fault("PUT", "/", 403, "AccessDenied"),
                        Fault("DELETE", "/", 403, "AccessDenied")]
    s3_proxy.clear()
    out = tmp_path / "out.mbz"
    res = cv("export", "-r", s3repo, str(snap["id"])[:12], "-o", out)
    assert res.code == 1 and len(res.err.strip().splitlines()) == 1, res.err
    assert "AccessDenied" in res.err and "/locks/" in res.err and "--no-lock" in res.err
    res = cv("export", "-r", s3repo, str(snap["id"])[:12], "-o", out, "--no-lock")
    assert res.code == 0, res.err
    assert read_members(out) == read_members(COURSES[0])
    res = cv("--no-lock", "check", "-r", s3repo, "--read-data")
    assert res.code == 0, res.err
    assert s3_proxy.requests["PUT"] == 1 and s3_proxy.requests["DELETE"] == 0  # the refused lock
