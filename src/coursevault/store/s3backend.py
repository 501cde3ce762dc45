"""A repository in an S3 bucket: the few calls of ``backend.py`` over boto3.

Locations are ``s3://bucket/prefix``; credentials and region come from the
usual AWS environment and configuration files (boto3 reads them), the
endpoint of a non-AWS service from the caller.  Like restic's S3 backend
this one does nothing but translate: retries, the concurrency limit and the
local cache are wrappers (``wrappers.py``, ``diskcache.py``), and botocore's
own retries are off so that one layer decides and a failure is seen.

What it relies on from the service (docs/format.md, "Object storage"):

* a PUT is atomic -- the object is whole or absent, never partial -- and a
  completed multipart upload likewise, so ``write`` needs no temporary name;
* conditional writes (``If-None-Match: *`` to create only if absent,
  ``If-Match: <ETag>`` to replace only what was read) for ``create`` and
  ``compare_and_swap``.  Whether the service honours them is found out once
  per backend, by a probe, the first time one is needed; a service that
  ignores them (rclone's ``serve s3`` does) gets read-then-write, correct
  for one writer of a course at a time, as docs/format.md explains.

Every failure becomes a :class:`~coursevault.errors.BackendError` naming
the operation and the key, ``retryable`` or not; a missing key is
``FileNotFoundError`` and a range past the end ``TruncatedError``, as the
contract asks.  Nothing is swallowed: a failed write raises.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from coursevault.errors import BackendError, BadInputError, TruncatedError
from coursevault.store.backend import TEMP_PREFIX

T = TypeVar("T")

# A pack of the default 16 MiB goes in one PUT; bigger ones (pack_size up to
# 1 GiB) in parts, which a failure costs one part to resend, not the pack.
MULTIPART_THRESHOLD = 32 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest part but the last
DEFAULT_CONNECTIONS = 8

# error codes an S3 service answers that a later try may not meet again
_RETRYABLE_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "OperationAborted",
    "ConditionalRequestConflict",
}


# what botocore accepts as a bucket name (an access point's ARN aside)
_BUCKET = re.compile(r"[a-zA-Z0-9.\-_]{1,255}")


@dataclass(frozen=True)
class S3Location:
    """A parsed ``s3://bucket/prefix``; keys of the repository live below ``prefix``."""

    bucket: str
    prefix: str

    @staticmethod
    def parse(location: str) -> S3Location:
        if not location.startswith("s3://"):
            raise BadInputError(f"not an S3 location: {location!r} (want s3://bucket/prefix)")
        bucket, _, prefix = location[len("s3://") :].partition("/")
        prefix = prefix.strip("/")
        if not bucket or any(part in ("", ".", "..") for part in prefix.split("/") if prefix):
            raise BadInputError(f"bad S3 location {location!r} (want s3://bucket/prefix)")
        if not _BUCKET.fullmatch(bucket):  # botocore's own rule, said in one line
            raise BadInputError(
                f"bad S3 location {location!r}: a bucket name is 1-255 letters, digits, "
                "'.', '-' or '_'")
        return S3Location(bucket, prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


# user:password@ in a URL a botocore message quotes (an --endpoint-url written so)
_PASSWORD_IN_URL = re.compile(r"(://[^/@:\s]*:)[^/@\s]*@")


# botocore's loader of service models, shared by every client this process
# makes: each new session parsed S3's model again, 0.13 s of a client's
# 0.17 s (a sync opens two repositories, a test many)
_LOADER: Any = None
_LOADER_LOCK = threading.Lock()


# Seconds a request may wait for the service's next bytes (--s3-timeout): a
# stalled service fails a request after this, each of its four tries
READ_TIMEOUT = 120.0


def make_client(endpoint_url: str | None, connections: int,
                read_timeout: float = READ_TIMEOUT) -> Any:
    """An S3 client with botocore's retries off (``RetryingBackend``
    retries) and checksums only where the service requires them (S3
    look-alikes reject the newer default ones); path-style addressing for a
    custom endpoint, where bucket host names rarely resolve.  A session of
    its own, so credentials and region are read as a new process would
    (boto3's chain: environment, then configuration files)."""
    import botocore.session
    from botocore.config import Config

    global _LOADER
    session = botocore.session.get_session()
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _LOADER)
    config = Config(
        # total_max_attempts counts the first try; max_attempts counts only
        # retries (1 was one more request after each failure, create and
        # compare_and_swap included)
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=max(1, connections),
        connect_timeout=min(10.0, read_timeout),
        read_timeout=read_timeout,
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    try:
        return session.create_client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=session.get_config_variable("region") or "us-east-1",
            config=config,
        )
    except ValueError as exc:  # botocore's "Invalid endpoint: notaurl"
        raise BadInputError(f"--endpoint-url {endpoint_url}: {exc}") from None


class S3Backend:
    """A repository under ``prefix`` in an S3 bucket (``S3Location``)."""

    def __init__(
        self,
        location: S3Location,
        client: Any = None,
        *,
        endpoint_url: str | None = None,
        connections: int = DEFAULT_CONNECTIONS,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
        conditional_writes: bool | None = None,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        """``client`` is made from ``endpoint_url``, ``connections`` and
        ``read_timeout`` on first use when not given (and again in a worker
        process)."""
        self.where = location
        self.endpoint_url = endpoint_url
        self.connections = connections
        self.read_timeout = read_timeout
        self._client = client
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        # None: not known yet, probed on first need (_conditional_writes)
        self._conditional = conditional_writes
        self._probe_lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.endpoint_url, self.connections, self.read_timeout)
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        """For a worker process (``backup --jobs``): a client and a lock do not
        cross; the worker makes its own."""
        state = dict(self.__dict__)
        state["_client"] = None
        del state["_probe_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._probe_lock = threading.Lock()

    def location(self) -> str:
        return str(self.where)

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
            raise BackendError(f"invalid storage key {key!r}", retryable=False)
        return f"{self.where.prefix}/{key}" if self.where.prefix else key

    def _call(self, operation: str, key: str, call: Callable[[], T]) -> T:
        """Run one request; translate what botocore raises (module docstring)."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return call()
        except ClientError as exc:
            raise _client_error(operation, f"{self.where}/{key}", exc) from exc
        except NoCredentialsError as exc:
            raise BackendError(
                f"S3 {operation} {self.where}/{key}: no AWS credentials "
                "(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)",
                retryable=False,
            ) from exc
        except BotoCoreError as exc:  # connection refused, reset, timed out, cut short
            # its message names the endpoint URL, and so a password written in it
            said = _PASSWORD_IN_URL.sub(r"\1***@", str(exc))
            raise BackendError(f"S3 {operation} {self.where}/{key}: {said}") from exc

    # -- listing ----------------------------------------------------------------------
    def _listing(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every object below the repository prefix and ``prefix``, as (key, size)."""
        base = f"{self.where.prefix}/" if self.where.prefix else ""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.where.bucket, Prefix=base + prefix
        )
        iterator = iter(pages)
        while True:
            page = self._call("ListObjectsV2", prefix or "/", lambda: next(iterator, None))
            if page is None:
                return
            for item in page.get("Contents", ()):
                yield item["Key"][len(base) :], int(item["Size"])

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        for key, size in self._listing(prefix):
            if not key.rsplit("/", 1)[-1].startswith("."):  # probes, other tools' temporaries
                yield key, size

    def list_temporary(self) -> Iterator[str]:
        """A PUT leaves no temporary object; a killed probe, or another
        tool writing here, may: they are listed for check and prune."""
        for key, _size in self._listing(""):
            if key.rsplit("/", 1)[-1].startswith(TEMP_PREFIX):
                yield key

    # -- reading ----------------------------------------------------------------------
    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        full = self._key(key)
        if length == 0:  # no empty range in HTTP: the answer is b"" if the key exists
            if not self.exists(key):
                raise FileNotFoundError(key)
            return b""
        args: dict[str, Any] = {"Bucket": self.where.bucket, "Key": full}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"

        def get() -> bytes:
            body = self.client.get_object(**args)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

        try:
            data = self._call("GetObject", key, get)
        except _NotFound:
            raise FileNotFoundError(key) from None
        except _RangeNotSatisfiable:
            if length is None:
                return b""  # from the end on: nothing, as a file read would say
            raise TruncatedError(
                f"short read from {self.where}/{key}: wanted {length} bytes at {offset}, "
                "the object ends before"
            ) from None
        if length is not None and len(data) != length:
            # an object cut short, or an answer cut short on its way (a
            # proxy's 206 with half the body): asked again before it is
            # called damage, which reads the same every time
            raise TruncatedError(
                f"short read from {self.where}/{key}: wanted {length} bytes at {offset}, "
                f"got {len(data)}",
                retryable=True,
            )
        return data

    def exists(self, key: str) -> bool:
        full = self._key(key)
        try:
            self._call(
                "HeadObject",
                key,
                lambda: self.client.head_object(Bucket=self.where.bucket, Key=full),
            )
        except _NotFound:
            return False
        return True

    # -- writing ----------------------------------------------------------------------
    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        if len(data) >= self.multipart_threshold:
            self._write_multipart(key, memoryview(data))
        else:
            self._put(key, bytes(data))

    def _put(self, key: str, data: bytes, **conditions: str) -> None:
        full = self._key(key)
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        self._call(
            "PutObject",
            key,
            lambda: self.client.put_object(
                Bucket=self.where.bucket, Key=full, Body=data, ContentMD5=md5, **conditions
            ),
        )

    def _write_multipart(self, key: str, data: memoryview) -> None:
        """Upload in parts; a failed upload is aborted (best effort: a
        lifecycle rule removing incomplete uploads is the backstop) and its
        error raised.  The object appears only on completion, whole."""
        full = self._key(key)
        bucket = self.where.bucket
        started = self._call(
            "CreateMultipartUpload",
            key,
            lambda: self.client.create_multipart_upload(Bucket=bucket, Key=full),
        )
        upload_id = started["UploadId"]
        try:
            parts = []
            size = max(self.part_size, MIN_PART_SIZE)
            for number, start in enumerate(range(0, len(data), size), start=1):
                chunk = bytes(data[start : start + size])
                answer = self._call(
                    f"UploadPart {number}", key, self._part(full, upload_id, number, chunk)
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
            self._call(
                "CompleteMultipartUpload",
                key,
                lambda: self.client.complete_multipart_upload(
                    Bucket=bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
                ),
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=bucket, Key=full, UploadId=upload_id)
            raise

    def _part(self, full: str, upload_id: str, number: int, chunk: bytes) -> Callable[[], Any]:
        md5 = base64.b64encode(hashlib.md5(chunk, usedforsecurity=False).digest()).decode()
        return lambda: self.client.upload_part(
            Bucket=self.where.bucket,
            Key=full,
            UploadId=upload_id,
            PartNumber=number,
            Body=chunk,
            ContentMD5=md5,
        )

    def create(self, key: str, data: bytes) -> bool:
        if self._conditional_writes():
            try:
                self._put(key, data, IfNoneMatch="*")
            except _PreconditionFailed:
                return False
            return True
        if self.exists(key):  # read-then-write: see the module docstring
            return False
        self._put(key, data)
        return True

    def compare_and_swap(self, key: str, expected: bytes | None, data: bytes) -> bool:
        if expected is None:
            return self.create(key, data)
        full = self._key(key)

        def get() -> tuple[bytes, str]:
            answer = self.client.get_object(Bucket=self.where.bucket, Key=full)
            with contextlib.closing(answer["Body"]) as body:
                return bytes(body.read()), str(answer["ETag"])

        try:
            current, etag = self._call("GetObject", key, get)
        except _NotFound:
            return False
        if current != expected:
            return False
        if not self._conditional_writes():
            self._put(key, data)
            return True
        try:
            self._put(key, data, IfMatch=etag)
        except (_PreconditionFailed, _NotFound):
            return False
        return True

    def delete(self, key: str) -> None:
        full = self._key(key)
        with contextlib.suppress(_NotFound):
            self._call(
                "DeleteObject",
                key,
                lambda: self.client.delete_object(Bucket=self.where.bucket, Key=full),
            )

    # -- conditional writes -----------------------------------------------------------
    def _conditional_writes(self) -> bool:
        """Whether the service refuses a PUT whose condition fails, found out
        once: a fresh probe object created with ``If-None-Match: *``, then
        created again the same way -- a service that honours the header
        refuses the second (412), one that ignores it overwrites."""
        with self._probe_lock:
            if self._conditional is None:
                probe = f"{TEMP_PREFIX}conditional-probe-{secrets.token_hex(8)}"
                try:
                    self._put(probe, b"probe", IfNoneMatch="*")
                    self._put(probe, b"probe", IfNoneMatch="*")
                    self._conditional = False  # the second one overwrote
                except _PreconditionFailed:
                    self._conditional = True
                except BackendError as exc:
                    if exc.retryable:
                        raise
                    self._conditional = False  # 501 NotImplemented, 400: header refused
                finally:
                    self.delete(probe)
            return self._conditional


class _NotFound(BackendError):
    """404: the key (not the bucket) is not there."""


class _RangeNotSatisfiable(BackendError):
    """416: the range starts past the end of the object."""


class _PreconditionFailed(BackendError):
    """412: the condition of a conditional write did not hold."""


def _client_error(operation: str, where: str, exc: Any) -> BackendError:
    """The BackendError for an S3 error answer (botocore's ClientError)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    message = f"S3 {operation} {where}: {code or 'error'} (HTTP {status})"
    if error.get("Message") and error.get("Message") != code:
        message += f": {error['Message']}"
    if code in ("NoSuchKey", "NotFound") or (status == 404 and code in ("404", "")):
        return _NotFound(message, retryable=False)
    if code == "InvalidRange" or status == 416:
        return _RangeNotSatisfiable(message, retryable=False)
    if code == "PreconditionFailed" or status == 412:
        return _PreconditionFailed(message, retryable=False)
    if code == "NoSuchBucket":
        return BackendError(f"{message} (create the bucket first)", retryable=False)
    retryable = status >= 500 or status in (408, 429) or code in _RETRYABLE_CODES
    return BackendError(message, retryable=retryable)
