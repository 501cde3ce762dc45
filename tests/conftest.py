"""Shared fixtures: the real corpus, a fresh repository per test, and small
hand-made courses whose nights differ in known ways.

Builders are handed to tests as fixtures (``write_course``, ``forum_xml``),
never imported from a conftest: pytest imports every folder's conftest.py as
the module ``conftest``, so ``from conftest import`` in one folder found
another folder's when tests/cli and tests/history were collected together.
Plain helpers with no setup are in helpers.py, imported as ``helpers``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import CORPUS, CORPUS_DIR, MINIMAL_BACKUP, write_tgz
from s3server import FaultProxy, S3Server
from workers import add_tallies, pack_tallies, print_tallies, worker_databases

from coursevault.store.backend import LocalBackend
from coursevault.store.repository import Repository


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    """The plugin registry read afresh (a test installs entry points)."""
    from coursevault.structure import registry

    registry._group.cache_clear()
    yield
    registry._group.cache_clear()


@pytest.fixture
def cv_repo(tmp_path: Path) -> Iterator[Repository]:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    repo = Repository.open(backend, cache_dir=tmp_path / "cache")
    yield repo
    repo.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One ``rclone serve s3`` on loopback for the session (tests/s3server.py)."""
    server = S3Server(tmp_path_factory.mktemp("s3server"))
    yield server
    server.stop()


@pytest.fixture
def s3_proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    """A counting, fault-injecting proxy in front of the S3 server, per test."""
    proxy = FaultProxy(s3_server.endpoint)
    yield proxy
    proxy.stop()


def _forum_xml(discussions: dict[int, list[tuple[int, str]]]) -> bytes:
    """A forum.xml in Moodle's exact form: {discussion id: [(post id, message)]}."""
    out = [
        b'<?xml version="1.0" encoding="UTF-8"?>\n<activity id="1" moduleid="5" modulename="forum" contextid="9">',
        b'\n  <forum id="1">\n    <type>general</type>\n    <name>News</name>\n    <discussions>',
    ]
    for did, posts in discussions.items():
        out.append(
            f'\n      <discussion id="{did}">\n        <name>D{did}</name>\n        <posts>'.encode()
        )
        for pid, msg in posts:
            out.append(
                f'\n          <post id="{pid}">\n            <subject>S{pid}</subject>'
                f"\n            <message>{msg}</message>\n            <attachment></attachment>"
                f"\n          </post>".encode()
            )
        out.append(b"\n        </posts>\n      </discussion>")
    out.append(b"\n    </discussions>\n  </forum>\n</activity>")
    return b"".join(out)


def _write_course(
    path: Path,
    discussions: dict[int, list[tuple[int, str]]],
    date: int = 1700000000,
    extra: list[tuple[str, bytes | None]] | None = None,
) -> Path:
    manifest = MINIMAL_BACKUP.replace(b"1700000000", str(date).encode())
    members: list[tuple[str, bytes | None]] = [
        ("activities/", None),
        ("activities/forum_5/", None),
        ("activities/forum_5/forum.xml", _forum_xml(discussions)),
        *(extra or []),
        ("moodle_backup.xml", manifest),
    ]
    write_tgz(path, members, mtime=date)
    return path


@pytest.fixture
def forum_xml() -> Callable[[dict[int, list[tuple[int, str]]]], bytes]:
    """A forum.xml in Moodle's exact form: {discussion id: [(post id, message)]}."""
    return _forum_xml


@pytest.fixture
def write_course() -> Callable[..., Path]:
    """Writes a course of one forum (forum_5) to a path: (path, discussions,
    date=1700000000, extra members=None) -> the path."""
    return _write_course


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not CORPUS:
        raise pytest.UsageError(
            f"the Moodle corpus is missing: expected .mbz files in {CORPUS_DIR}"
        )


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:  # one of several test processes (tests/workers.py)
        worker_databases(worker)


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["coursevault_tallies"] = pack_tallies()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    packed = getattr(node, "workeroutput", {}).get("coursevault_tallies")
    if packed:
        add_tallies(packed)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    print_tallies(terminalreporter)  # tests/dbbackup's and tests/dbrestore's tables
