"""The README's main job on the embedded default: a demo site on SQLite,
backed up, one night of churn, backed up again (``--skip-unmodified`` skips
the course before the night, not after it); the diff between the two
snapshots is the night, and the newest one exports (issue 21, "Commands")."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .clirun import Result


def test_a_demo_course_night_by_night(cv: Callable[..., Result], tmp_path: Path) -> None:
    site = ("--db", f"sqlite:///{tmp_path}/site.db", "--dataroot", tmp_path / "moodledata")
    assert cv("demo-site", *site, "--size", "S").code == 0
    first = cv("backup", *site, "--course", "2")
    assert first.code == 0, first.err
    quiet = cv("backup", *site, "--all", "--skip-unmodified")
    assert quiet.code == 0 and "skipped" in quiet.out, quiet
    night = cv("demo-site", *site, "--churn", "--json")
    assert night.code == 0 and json.loads(night.out)["night"] == 1
    # the night happened now: its log lines are newer than the last snapshot
    second = cv("backup", *site, "--all", "--skip-unmodified")
    assert second.code == 0 and "skipped" not in second.out, second
    snapshots = json.loads(cv("snapshots", "--json").out)
    assert len(snapshots) == 2
    key = snapshots[0]["course"]
    stat = cv("diff", f"{key}@~1", f"{key}@latest", "--stat")
    assert stat.code == 0, stat.err
    changed = {line.split()[0] for line in stat.out.splitlines()[1:-1]}
    # the night's forum posts, submissions and grades, edited page and new file
    assert {"files.xml", "files"} <= changed
    assert {g.split("_")[0] for g in changed if g.startswith("activities/")} == {
        "activities/assign",
        "activities/forum",
        "activities/page",
        "activities/resource",
    }
    assert cv("export", f"{key}@latest", "-o", tmp_path / "night1.mbz").code == 0
    assert (tmp_path / "night1.mbz").stat().st_size > 9_000_000  # the files are in it


def test_a_change_logged_in_the_second_the_last_backup_began_is_not_skipped(
    cv: Callable[..., Result], tmp_path: Path
) -> None:
    """A backup's time is the whole second it began; an event logged later in
    that second, after its read, was skipped by ``--skip-unmodified`` (as
    Moodle's ``timecreated > laststarttime`` skips it): that night's change
    waited for the next one.  The demo test above failed on it when the
    churn came within the backup's second."""
    import sqlite3

    site = ("--db", f"sqlite:///{tmp_path}/site.db", "--dataroot", tmp_path / "moodledata")
    assert cv("demo-site", *site, "--size", "S").code == 0
    assert cv("backup", *site, "--course", "2").code == 0
    quiet = cv("backup", *site, "--all", "--skip-unmodified")
    assert quiet.code == 0 and "skipped" in quiet.out, quiet
    (snap,) = json.loads(cv("snapshots", "--json").out)
    began = int(snap["epoch"])
    con = sqlite3.connect(tmp_path / "site.db")
    with con:  # a teacher's edit, logged as Moodle logs it
        con.execute(
            "INSERT INTO mdl_logstore_standard_log (eventname, component, action, target, "
            "crud, edulevel, contextid, contextlevel, contextinstanceid, userid, courseid, "
            "anonymous, timecreated, origin) VALUES ('\\core\\event\\course_updated', "
            "'core', 'updated', 'course', 'u', 1, 1, 50, 2, 2, 2, 0, ?, 'web')", (began,))
    con.close()
    again = cv("backup", *site, "--all", "--skip-unmodified")
    assert again.code == 0 and "skipped" not in again.out, again


def test_shards_split_a_site_between_workers(cv: Callable[..., Result], tmp_path: Path) -> None:
    """``--shard K/N``: N workers, each backing up its own courses into one
    repository, together back up every course once."""
    site = ("--db", f"sqlite:///{tmp_path}/site.db", "--dataroot", tmp_path / "moodledata")
    made = cv("demo-site", *site, "--size", "S", "--courses", "3", "--json")
    assert made.code == 0, made.err
    courses = set(json.loads(made.out)["courses"])
    shards = []
    for k in (1, 2):
        result = cv("backup", *site, "--all", "--shard", f"{k}/2", "--json")
        assert result.code == 0, result.err
        shards.append({o["course_id"] for o in json.loads(result.out)})
    assert shards[0] | shards[1] == courses and not shards[0] & shards[1]
    assert all(shards) and {c % 2 for c in shards[0]} == {0}
    for bad in ("0/2", "3/2", "2", "a/b"):
        refused = cv("backup", *site, "--all", "--shard", bad)
        assert refused.code == 2 and "--shard" in refused.err, (bad, refused)


def _damage_site(db: Path, dataroot: Path, bad_row_course: int, bad_file_course: int) -> None:
    """A forum post of one course whose text is not UTF-8 (SQLite keeps what
    it is given), and a file of another whose bytes no longer hash to their
    contenthash."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE mdl_forum_posts SET message = CAST(X'C328FF' AS TEXT) WHERE id = ("
            "SELECT p.id FROM mdl_forum_posts p JOIN mdl_forum_discussions d"
            " ON d.id = p.discussion WHERE d.course = ? LIMIT 1)",
            (bad_row_course,),
        )
        (contenthash,) = conn.execute(
            "SELECT f.contenthash FROM mdl_files f JOIN mdl_context x ON x.id = f.contextid"
            " JOIN mdl_course_modules cm ON cm.id = x.instanceid AND x.contextlevel = 70"
            " WHERE cm.course = ? AND f.filesize > 100 ORDER BY f.id LIMIT 1",
            (bad_file_course,),
        ).fetchone()
    stored = dataroot / "filedir" / contenthash[:2] / contenthash[2:4] / contenthash
    data = bytearray(stored.read_bytes())
    data[50] ^= 0xFF
    stored.write_bytes(bytes(data))


def test_one_course_s_bad_row_fails_that_course_only(
    cv: Callable[..., Result], tmp_path: Path
) -> None:
    """A row the driver cannot read fails its course, named with the table;
    the run goes on to the others (exit 2, as any failed course), alone or
    with --jobs; a file whose bytes do not match its contenthash is stored
    as read and reported (issue 21, "Source database and files")."""
    site = ("--db", f"sqlite:///{tmp_path}/site.db", "--dataroot", tmp_path / "moodledata")
    made = cv("demo-site", *site, "--size", "S", "--courses", "3", "--json")
    assert made.code == 0, made.err
    courses = sorted(json.loads(made.out)["courses"])
    _damage_site(tmp_path / "site.db", tmp_path / "moodledata", courses[0], courses[1])
    for repo in ("r1", "r2", "plain"):
        assert cv("init", "-r", tmp_path / repo).code == 0
    for jobs in ("1", "2"):
        run = cv("backup", *site, "--all", "--jobs", jobs, "--json", "-r", tmp_path / f"r{jobs}")
        assert run.code == 2, run.err
        outcomes = {o["course_id"]: o for o in json.loads(run.out)}
        assert set(outcomes) == set(courses)
        failed = outcomes[courses[0]]
        assert failed["outcome"] == "failed" and "table forum_posts" in failed["error"], failed
        assert [outcomes[c]["outcome"] for c in courses[1:]] == ["stored", "stored"]
        assert outcomes[courses[1]]["files_misnamed"] >= 1
        assert "3 courses" in run.err or "1 of 3 courses" in run.err, run.err
    plain = cv("backup", *site, "--course", str(courses[1]), "-r", tmp_path / "plain")
    assert plain.code == 0 and "does not hash to its contenthash" in plain.err, plain.err
    # and its run says so: it logged "stored" with no warning
    (logged,) = json.loads(cv("runs", "--json", "-r", tmp_path / "plain").out)
    assert "does not hash to its contenthash" in logged["error"], logged


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_backup_jobs_workers_end_when_the_backup_is_killed(
    cv: Callable[..., Result], tmp_path: Path
) -> None:
    """SIGKILL of ``backup --jobs 2`` left its two worker processes waiting
    on the pool's queue forever; they now end within a second or so."""
    import os
    import signal
    import subprocess
    import sys
    import time

    site = ("--db", f"sqlite:///{tmp_path}/site.db", "--dataroot", str(tmp_path / "moodledata"))
    assert cv("demo-site", *site, "--size", "S", "--courses", "3").code == 0
    env = {**os.environ, "COURSEVAULT_REPO": str(tmp_path / "repo")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "coursevault.cli.app", "backup", *site, "--all", "--jobs", "2",
         "--json"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(workers) < 2 and proc.poll() is None:
            workers = {c for c in _children(proc.pid) if "spawn_main" in
                       Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")}
            time.sleep(0.05)
        assert len(workers) == 2 and proc.poll() is None, "the workers never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "workers outlived the backup"
    finally:
        proc.kill()
        for w in workers:  # left by a failure here, not by the backup
            if _alive(w):
                os.kill(w, signal.SIGKILL)


def test_backup_into_a_closed_pipe_backs_every_course_up(
    cv: Callable[..., Result], tmp_path: Path
) -> None:
    """``backup --all | head -1``: the first course's line met the broken
    pipe and the run stopped there, exit 0, the other courses not backed up."""
    import os
    import subprocess
    import sys

    site = ("--db", f"sqlite:///{tmp_path}/site.db", "--dataroot", str(tmp_path / "moodledata"))
    assert cv("demo-site", *site, "--size", "S", "--courses", "3").code == 0
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "coursevault.cli.app", "backup", *site, "--all"],
            env={**os.environ, "COURSEVAULT_REPO": str(tmp_path / "repo")},
            stdout=write_end, stderr=subprocess.PIPE, timeout=300, check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 0, done.stderr.decode()
    assert len(json.loads(cv("snapshots", "--json").out)) == 3


def test_a_sqlite_query_argument_is_refused_or_passed_on(
    cv: Callable[..., Result], tmp_path: Path
) -> None:
    """'?mode=ro' was ignored, with SQLAlchemy's two-line warning on stderr;
    it is refused in one line saying how to pass it (uri=true), which then
    backs the site up through a read-only connection."""
    data = ("--dataroot", tmp_path / "moodledata")
    db = f"sqlite:///{tmp_path}/site.db"
    assert cv("demo-site", "--db", db, *data, "--size", "S").code == 0
    for wrong in ("?mode=ro", "?mode=ro&uri=true"):  # the second made 'site.db?mode=ro'
        refused = cv("backup", "--db", db + wrong, *data, "--all")
        assert refused.code == 13 and refused.err.count("\n") == 1, refused.err
        assert "file:/path/site.db?mode=ro&uri=true" in refused.err
    assert sorted(p.name for p in tmp_path.glob("site.db*")) == ["site.db"]
    done = cv("backup", "--db", f"sqlite:///file:{tmp_path}/site.db?mode=ro&uri=true", *data,
              "--all")
    assert done.code == 0 and done.err == "", done.err


def test_a_full_temporary_folder_names_it_and_stores_nothing(
    cv: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every member is made into a temporary file before any is stored
    (dbsource.py): a full TMPDIR there is one line naming it, not an internal
    error, and no snapshot is written."""
    import errno
    import tempfile

    site = ("--db", f"sqlite:///{tmp_path}/site.db", "--dataroot", tmp_path / "moodledata")
    assert cv("demo-site", *site, "--size", "S").code == 0
    real = tempfile.TemporaryFile

    class Full:
        """A temporary file on a full disk: the first write that reaches it fails."""

        def __init__(self, prefix: str) -> None:
            self._file = real(prefix=prefix, buffering=0)

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name: str) -> object:
            return getattr(self._file, name)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self._file.close()

    monkeypatch.setattr(tempfile, "TemporaryFile", lambda *a, prefix="tmp", **k: Full(prefix))
    run = cv("backup", *site, "--course", "2")
    monkeypatch.undo()
    assert run.code == 1, (run.out, run.err)
    assert "TMPDIR" in run.err and "No space left" in run.err, run.err
    assert "internal error" not in run.err and "Traceback" not in run.err, run.err
    assert cv("snapshots", "--json").out.strip() in ("[]", "")


def test_a_backup_keeps_a_small_share_of_the_catalog_s_pages(tmp_path: Path) -> None:
    """A backup asks about each object it stores once: a big course's night
    filled a 4 MiB page cache with catalog pages it did not read again
    (docs/benchmarks.md 9b); a backup keeps 1 MiB of them."""
    from coursevault import api
    from coursevault.moodledb.demosite import build_demo_site
    from coursevault.snapshot.dbbackup import BACKUP_CATALOG_CACHE_KIB
    from coursevault.store.backend import LocalBackend
    from coursevault.store.repository import Repository

    url = f"sqlite:///{tmp_path}/site.db"
    build_demo_site(url, tmp_path / "data", "S", seed=1)
    Repository.init(LocalBackend(tmp_path / "repo"))
    repo = Repository.open(LocalBackend(tmp_path / "repo"), cache_dir=tmp_path / "cache")
    try:
        assert repo.catalog._raw.execute("PRAGMA cache_size").fetchone()[0] == -4096
        request = api.BackupRequest(db_url=url, dataroot=str(tmp_path / "data"), courses=[2])
        assert [o.outcome for o in api.backup(repo, request)] == ["stored"]
        kib = -repo.catalog._raw.execute("PRAGMA cache_size").fetchone()[0]
        assert kib == BACKUP_CATALOG_CACHE_KIB <= 1024
    finally:
        repo.close()


def test_storing_a_course_s_members_hands_free_pages_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What making the members freed, and then what storing each 4 MiB of
    them freed, goes back to the system (allocator.Trimmer): held, the holes
    it leaves between longer-lived objects raised the night's peak."""
    from coursevault import allocator, api
    from coursevault.moodledb.demosite import build_demo_site
    from coursevault.snapshot import dbsource
    from coursevault.store.backend import LocalBackend
    from coursevault.store.repository import Repository

    trims: list[int] = []
    monkeypatch.setattr(allocator.Trimmer, "trim",
                        lambda self: trims.append(self._since) or setattr(self, "_since", 0))
    url = f"sqlite:///{tmp_path}/site.db"
    build_demo_site(url, tmp_path / "data", "S", seed=1)
    Repository.init(LocalBackend(tmp_path / "repo"))
    repo = Repository.open(LocalBackend(tmp_path / "repo"), cache_dir=tmp_path / "cache")
    try:
        request = api.BackupRequest(db_url=url, dataroot=str(tmp_path / "data"), courses=[2])
        [outcome] = api.backup(repo, request)
        assert outcome.outcome == "stored"
    finally:
        repo.close()
    # once all are made, then each time 4 MiB more were stored (9 MiB of files)
    assert trims[0] == 0 and len(trims) >= 3
    assert all(since >= dbsource.TRIM_EVERY for since in trims[1:])
