"""Conditional writes against an S3 service that honours them: moto's
server (``ThreadedMotoServer``, on loopback), where ``rclone serve s3`` --
the suite's other server -- ignores ``If-None-Match`` and ``If-Match``.
docs/format.md section 11 says what the store relies on them for: a
journal generation taken once (create-if-absent) and a course's ref
swapped only from what was read (compare-and-swap)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from s3server import MotoS3

from coursevault.store.backend import Backend
from coursevault.store.journal import INDEX, append, replay
from coursevault.store.repository import Repository
from coursevault.store.s3backend import S3Backend, S3Location
from coursevault.store.wrappers import BackendWrapper


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = MotoS3(tmp_path_factory.mktemp("moto"))
    yield server.endpoint
    server.stop()


def _client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="moto",
        aws_secret_access_key="moto",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


@pytest.fixture
def writers(moto_endpoint: str) -> tuple[S3Backend, S3Backend]:
    """Two writers (each its own client) of one repository prefix, in a new bucket."""
    bucket = f"coursevault-{secrets.token_hex(6)}"
    _client(moto_endpoint).create_bucket(Bucket=bucket)
    where = S3Location(bucket, "repo")
    return S3Backend(where, _client(moto_endpoint)), S3Backend(where, _client(moto_endpoint))


class Refusals(BackendWrapper):
    """Counts the creates the service refused."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.refused: list[str] = []

    def create(self, key: str, data: bytes) -> bool:
        made = self.inner.create(key, data)
        if not made:
            self.refused.append(key)
        return made


def stale(writer: S3Backend) -> None:
    """The writer looked before another wrote: its HEADs of journal
    generations answer 404, so only the write itself can find the clash."""
    from botocore.exceptions import ClientError

    head = writer.client.head_object

    def head_before(**kw: Any) -> Any:
        if "/journal/0" in kw["Key"]:
            error = {"Error": {"Code": "404", "Message": "Not Found"}}
            raise ClientError({**error, "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadObject")
        return head(**kw)

    writer.client.head_object = head_before


def test_the_probe_finds_conditional_writes_and_leaves_nothing(
    writers: tuple[S3Backend, S3Backend],
) -> None:
    first, second = writers
    assert first.create("config", b"mine") is True
    assert first._conditional is True  # moto refused the probe's second create (412)
    assert list(first.list_temporary()) == []
    assert second.create("config", b"theirs") is False
    assert first.read("config") == b"mine"


@pytest.mark.parametrize("honoured", [True, False], ids=["if-none-match", "read-then-write"])
def test_two_writers_taking_one_journal_generation_lose_nothing(
    writers: tuple[S3Backend, S3Backend], honoured: bool
) -> None:
    """Both read the journal at generation g; the first journals its index
    file in g; the second, whose look came before, tries g too.  With
    ``If-None-Match: *`` the service refuses it (412) and it takes g + 1.
    Without (a service that ignores the header: forced here), its write
    replaces the first one's entry -- the loss docs/format.md section 11
    describes, which ``check`` reports and ``repair journal`` mends."""
    first, second = writers
    Repository.init(first)
    second._conditional = None if honoured else False
    known = replay(first)
    assert known is not None
    where = (known.pointer.journal, known.head)
    mine, theirs = f"{1:064x}", f"{2:064x}"
    taken = append(first, where, added=[(INDEX, mine)])
    stale(second)
    late = Refusals(second)
    after = append(late, where, added=[(INDEX, theirs)])
    state = replay(first)
    assert state is not None and taken is not None
    if honoured:
        assert second._conditional is True  # found by the probe
        assert late.refused == [f"journal/{taken:020d}"] and after == taken + 1
        assert {mine, theirs} <= state.live[INDEX]
    else:
        assert after == taken and late.refused == []
        assert theirs in state.live[INDEX] and mine not in state.live[INDEX]


def test_a_ref_swapped_by_another_after_it_was_read_is_not_overwritten(
    writers: tuple[S3Backend, S3Backend],
) -> None:
    first, second = writers
    assert first.create("refs/heads/course", b"night 1\n") is True
    read = first.client.get_object

    def read_then_race(**kw: object) -> object:
        answer = read(**kw)
        assert second.compare_and_swap("refs/heads/course", b"night 1\n", b"theirs\n")
        return answer

    first.client.get_object = read_then_race
    swapped = first.compare_and_swap("refs/heads/course", b"night 1\n", b"ours\n")
    first.client.get_object = read
    assert swapped is False  # If-Match on the ETag it read: 412
    assert first.read("refs/heads/course") == b"theirs\n"
    assert first.compare_and_swap("refs/heads/course", b"theirs\n", b"ours\n") is True
    assert second.read("refs/heads/course") == b"ours\n"
