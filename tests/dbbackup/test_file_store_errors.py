"""A file store that cannot be read (issue 21, "Source database and files"):
a file that is not a regular file, or whose read fails (EIO), fails the
course that holds it, named with its path, never "missing" nor an internal
error; the other courses of the run are stored (exit 2, as any course that
cannot be backed up: 13 is for a site that cannot be read at all)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from .clirun import Result

EXIT_BAD_INPUT = 2


def _own_file(db: Path, course: int) -> str:
    """The contenthash of a file of ``course``'s activities that no other course holds."""
    with sqlite3.connect(db) as conn:
        return str(conn.execute(
            "SELECT f.contenthash FROM mdl_files f JOIN mdl_context x ON x.id = f.contextid"
            " JOIN mdl_course_modules cm ON cm.id = x.instanceid AND x.contextlevel = 70"
            " WHERE cm.course = ? AND f.filename <> '.' AND f.contenthash NOT IN ("
            "  SELECT g.contenthash FROM mdl_files g JOIN mdl_context y ON y.id = g.contextid"
            "  JOIN mdl_course_modules dm ON dm.id = y.instanceid AND y.contextlevel = 70"
            "  WHERE dm.course <> ?) ORDER BY f.id LIMIT 1", (course, course)).fetchone()[0])


def test_an_unreadable_file_fails_its_course_and_the_others_go_on(
    cv: Callable[..., Result], tmp_path: Path
) -> None:
    from coursevault.moodledb.demosite import build_demo_site

    db, dataroot = tmp_path / "site.db", tmp_path / "data"
    courses = sorted(build_demo_site(f"sqlite:///{db}", dataroot, "S", courses=3).courses)
    site = ("--db", f"sqlite:///{db}", "--dataroot", str(dataroot))
    sha = _own_file(db, courses[0])
    path = dataroot / "filedir" / sha[:2] / sha[2:4] / sha
    path.unlink()
    path.mkdir()  # a folder where the file was: "missing" before, or a read of a folder
    run = cv("backup", *site, "--all", "--jobs", "2", "--json")
    assert run.code == EXIT_BAD_INPUT, run.err
    outcomes = {o["course_id"]: o for o in json.loads(run.out)}
    assert outcomes[courses[0]]["outcome"] == "failed"
    assert {outcomes[c]["outcome"] for c in courses[1:]} == {"stored"}  # it stopped the run
    reported = {o["snapshot"] for o in outcomes.values() if o["outcome"] == "stored"}
    stored = {s["id"] for s in json.loads(cv("snapshots", "--json").out)}
    assert stored == reported
    assert outcomes[courses[0]]["error"] == f"file store: {path}: not a regular file"

    path.rmdir()
    path.symlink_to("/proc/self/mem")  # every read of it fails: EIO
    run = cv("backup", *site, "--course", str(courses[0]), "--course", str(courses[1]))
    assert run.code == EXIT_BAD_INPUT, run.err
    assert f"course {courses[0]}: file store: {path}: Input/output error" in run.err, run.err
    assert os.path.islink(path)
    runs = json.loads(cv("runs", "--json").out)
    failed = [r for r in runs if r["outcome"] == "failed"]
    assert len(failed) == 2 and all("file store: " in r["error"] for r in failed), runs
    assert len([r for r in runs if r["outcome"] == "stored"]) == 3, runs


def test_ctrl_c_stops_a_jobs_run_without_starting_the_queued_courses(
    cv: Callable[..., Result], tmp_path: Path
) -> None:
    """SIGINT to the backup alone (``timeout -s INT``): it said "interrupted"
    and exited 130, but only once the pool had backed up every course still
    queued -- on a site, hours later."""
    import signal
    import subprocess
    import sys
    import time

    from coursevault.moodledb.demosite import build_demo_site

    db, dataroot = tmp_path / "site.db", tmp_path / "data"
    build_demo_site(f"sqlite:///{db}", dataroot, "S", courses=8)
    proc = subprocess.Popen(
        [sys.executable, "-m", "coursevault.cli.app", "backup", "--db", f"sqlite:///{db}",
         "--dataroot", str(dataroot), "--all", "--jobs", "2"],
        env={**os.environ, "COURSEVAULT_REPO": str(tmp_path / "repo")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        first = proc.stdout.readline() if proc.stdout else b""  # a course is stored: all run
        assert first, proc.communicate()[1].decode()
        proc.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        _out, err = proc.communicate(timeout=60)
        took = time.monotonic() - interrupted
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err
    stored = json.loads(cv("snapshots", "--json").out)
    assert 1 <= len(stored) < 8, (len(stored), took)
    assert took < 15, took


def test_a_file_missing_from_the_pool_is_a_warning_the_run_keeps(
    cv: Callable[..., Result], tmp_path: Path
) -> None:
    """A file the database names and the file store lacks: reported, its
    files.xml row kept and its content left out, as Moodle's backup does
    ("Missing file in pool"); the course is stored (exit 0), and its run
    says so -- with a dataroot that was not the site's, every file went
    missing and ``runs`` said only "stored"."""
    import tarfile

    from coursevault.moodledb.demosite import build_demo_site

    db, dataroot = tmp_path / "site.db", tmp_path / "data"
    course = sorted(build_demo_site(f"sqlite:///{db}", dataroot, "S", courses=1).courses)[0]
    sha = _own_file(db, course)
    (dataroot / "filedir" / sha[:2] / sha[2:4] / sha).unlink()
    run = cv("backup", "--db", f"sqlite:///{db}", "--dataroot", dataroot, "--course", course)
    assert run.code == 0, run.err
    assert f"course {course}: Missing file in pool: " in run.err and f"[{sha}]" in run.err
    [row] = json.loads(cv("runs", "--json").out)
    assert row["outcome"] == "stored"
    assert row["error"].startswith("1 warning; the first: Missing file in pool: "), row
    assert f"{row['snapshot'][:12]} (1 warning)" in cv("runs").out
    mbz = tmp_path / "c.mbz"
    assert cv("export", row["snapshot"], "-o", mbz).code == 0
    with tarfile.open(mbz) as tar:
        names = tar.getnames()
        files_xml = tar.extractfile("files.xml").read().decode()  # type: ignore[union-attr]
    assert f"files/{sha[:2]}/{sha}" not in names and sha in files_xml


def test_a_content_hash_that_is_a_path_is_not_read(
    cv: Callable[..., Result], tmp_path: Path
) -> None:
    """A files row whose contenthash is a path ("/etc/shadow"): os.path.join
    restarts at it, and the backup stored that file -- any file the backup
    may read -- as the course's content.  It fails the course, naming the
    row, and nothing of the file is stored."""
    from coursevault.moodledb.demosite import build_demo_site

    db, dataroot = tmp_path / "site.db", tmp_path / "data"
    course = sorted(build_demo_site(f"sqlite:///{db}", dataroot, "S", courses=1).courses)[0]
    secret = tmp_path / "secret"
    secret.write_text("not the course's")
    sha = _own_file(db, course)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE mdl_files SET contenthash = ? WHERE contenthash = ?",
                     (str(secret), sha))
    run = cv("backup", "--db", f"sqlite:///{db}", "--dataroot", dataroot, "--course", course)
    assert run.code == EXIT_BAD_INPUT, run.err
    assert f"its contenthash {str(secret)!r} is not a SHA-1" in run.err, run.err
    assert json.loads(cv("snapshots", "--json").out) == []
