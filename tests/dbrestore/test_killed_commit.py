"""A restore killed while its database server is still committing.

The client dies, the server goes on committing; the next restore's
``recover`` ran at once, saw no committed ``files`` row naming the killed
restore's contents, and removed them -- then the commit landed, and the
course named 69 contents that were gone.  recover now waits for the killed
restore's database session to end (moodledb/filedir.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from coursevault.cli.app import main
from coursevault.moodledb import demosite

from .tinysite import TINY_TARGET, Tiny

SLOW_COMMIT = 4  # seconds the deferred trigger holds the commit


@pytest.fixture
def pg_site(tmp_path: Path) -> tuple[str, Path]:
    admin = os.environ.get("COURSEVAULT_TEST_POSTGRES")
    if not admin:
        if os.environ.get("CI") == "true":
            pytest.fail("no PostgreSQL server: CI=true needs it (scripts/test starts one)")
        pytest.skip("no PostgreSQL server: run scripts/test (it starts one)")
    name = f"cv_killed_commit_{os.getpid()}"
    server = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.engine.make_url(admin).set(database=name).render_as_string(hide_password=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(demosite.SIZES, "U", TINY_TARGET)
        demosite.build_demo_site(url, tmp_path / "data", "U", seed=2)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE FUNCTION cv_slow() RETURNS trigger AS $$ BEGIN "
            f"PERFORM pg_sleep({SLOW_COMMIT}); RETURN NULL; END $$ LANGUAGE plpgsql"))
        conn.execute(sa.text(
            "CREATE CONSTRAINT TRIGGER cv_slow AFTER INSERT ON mdl_course DEFERRABLE "
            "INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.shortname LIKE 'slow%') "
            "EXECUTE FUNCTION cv_slow()"))
    engine.dispose()
    yield url, tmp_path / "data"
    with server.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    server.dispose()


def _missing_contents(url: str, data: Path) -> set[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        named = {r[0] for r in conn.execute(sa.text(
            "SELECT DISTINCT contenthash FROM mdl_files WHERE filename <> '.'"))}
    engine.dispose()
    return {h for h in named if not (data / "filedir" / h[:2] / h[2:4] / h).exists()}


def test_the_next_restore_waits_for_a_killed_restore_s_commit(
    tiny: Tiny, pg_site: tuple[str, Path]
) -> None:
    url, data = pg_site
    argv = ["-r", tiny.repo, "restore", tiny.snapshot, "--db", url, "--dataroot", str(data)]
    killed = subprocess.Popen(
        [sys.executable, "-m", "coursevault.cli.app", *argv, "--shortname", "slowA"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    journal: list[Path] = []
    while not journal and time.monotonic() < deadline and killed.poll() is None:
        journal = list((data / "temp").glob("coursevault-restore-*/published"))
        time.sleep(0.05)
    assert journal, "the restore never published its contents"
    time.sleep(0.5)  # its contents moved in, the server committing
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    # recover() runs first, then this restore stops (no course 999): it
    # brings none of the contents back itself
    assert main([*argv, "--into", "999", "--merge"]) == 2
    time.sleep(SLOW_COMMIT + 1)  # the killed restore's commit lands
    assert _missing_contents(url, data) == set()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT COUNT(*) FROM mdl_course WHERE shortname = 'slowA'")).scalar() == 1
    engine.dispose()
    assert main([*argv, "--shortname", "after"]) == 0  # and then clears its folder
    assert list((data / "temp").glob("coursevault-restore-*")) == []
