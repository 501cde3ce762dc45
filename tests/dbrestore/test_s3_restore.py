"""``restore --db`` from a repository in S3 (issue 24: every command works on
an S3 repository as on a folder).  The session's tiny demo course
(tinysite.py) is synced into a loopback S3 repository (``rclone serve s3``,
tests/s3server.py; never skipped under CI=true) and restored from there into
a copy of the other demo site, by a machine with nothing of it cached: its
records and its files' contents come from the service."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from s3server import FaultProxy, S3Server

from .clirun import run, run_json
from .tinysite import Tiny


def test_a_course_restores_from_an_s3_repository(
    tiny: Tiny,
    s3_server: S3Server,
    s3_proxy: FaultProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in s3_server.env(s3_proxy.endpoint).items():
        monkeypatch.setenv(name, value)
    hub = f"s3://{s3_server.make_bucket()}/hub"
    assert run("sync", tiny.repo, hub, "--cache-dir", tmp_path / "cache-here").code == 0
    site = tiny.copy(tmp_path / "site")

    s3_proxy.clear()
    there = ("-r", hub, "--cache-dir", tmp_path / "cache-there")  # another machine
    target = ("--db", site.url, "--dataroot", site.dataroot)
    report = run_json(*there, "restore", tiny.snapshot, *target)
    assert s3_proxy.requests["GET"] > 0  # read from the service
    assert not any(s.startswith("PUT") and "/packs/" in s for s in s3_proxy.seen)

    assert report["left_out"] == [] and report["warnings"] == []
    assert report["rows"]["course"] == 1 and report["rows"]["course_modules"] > 0
    # the target site lacked the course's files: their contents came from S3
    assert report["files"]["restored"] > 0 and report["files"]["contents"] > 0
    with site.engine.connect() as conn:
        modules = conn.execute(
            sa.text("SELECT COUNT(*) FROM mdl_course_modules WHERE course = :c"),
            {"c": report["courseid"]},
        ).scalar_one()
    assert modules == report["rows"]["course_modules"]
