"""``restore --db`` from a repository in S3 (issue 24: every command works on
an S3 repository as on a folder), on a demo site on SQLite: the course
backed up into a loopback S3 repository (``rclone serve s3``,
tests/s3server.py; never skipped under CI=true) and restored from it by
another machine, one with nothing of the repository cached."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from s3server import FaultProxy, S3Server

from .clirun import run, run_json


def test_a_course_restores_from_an_s3_repository(
    s3_server: S3Server, s3_proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_server.env(s3_proxy.endpoint).items():
        monkeypatch.setenv(name, value)
    repo = f"s3://{s3_server.make_bucket()}/site"
    db, dataroot = f"sqlite:///{tmp_path / 'site.db'}", tmp_path / "dataroot"
    site = run_json("demo-site", "--db", db, "--dataroot", dataroot, "--size", "S")
    here = ("-r", repo, "--cache-dir", tmp_path / "cache-here")
    assert run(*here, "init").code == 0
    [backup] = run_json(
        *here, "backup", "--db", db, "--dataroot", dataroot, "--course", site["courses"][0]
    )

    s3_proxy.clear()
    there = ("-r", repo, "--cache-dir", tmp_path / "cache-there")  # another machine
    report = run_json(*there, "restore", backup["snapshot"], "--db", db, "--dataroot", dataroot)
    # the snapshot was read from the service: packs, index files, its record
    assert s3_proxy.requests["GET"] > 0
    assert not any(s.startswith(("PUT", "POST")) and "/packs/" in s for s in s3_proxy.seen)

    assert report["courseid"] not in site["courses"]
    assert report["left_out"] == [] and report["warnings"] == []
    assert report["rows"]["course"] == 1
    assert report["rows"]["course_modules"] > 0 and report["files"]["restored"] > 0
    with sqlite3.connect(tmp_path / "site.db") as con:
        (original,) = con.execute(
            "SELECT fullname FROM mdl_course WHERE id = ?", (site["courses"][0],)
        ).fetchone()
        (restored,) = con.execute(
            "SELECT fullname FROM mdl_course WHERE id = ?", (report["courseid"],)
        ).fetchone()
        modules = con.execute(
            "SELECT COUNT(*) FROM mdl_course_modules WHERE course = ?", (report["courseid"],)
        ).fetchone()[0]
    assert restored.startswith(original) and modules == report["rows"]["course_modules"]
