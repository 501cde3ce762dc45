"""A database backup's time as a user sees it (an adversarial pass): the
time ``snapshots`` prints for it selects it, and its export ingested again
is filed after it, as an archive ingested again is."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .clirun import Result


def test_a_printed_time_selects_its_snapshot_and_a_re_ingest_comes_after(
    cv: Callable[..., Result], tmp_path: Path
) -> None:
    from coursevault.moodledb.demosite import build_demo_site

    db, dataroot = tmp_path / "site.db", tmp_path / "data"
    course = sorted(build_demo_site(f"sqlite:///{db}", dataroot, "S", courses=1).courses)[0]
    assert cv("backup", "--db", f"sqlite:///{db}", "--dataroot", dataroot,
              "--course", course).code == 0
    [snap] = json.loads(cv("snapshots", "--json").out)
    assert snap["epoch"] == int(snap["epoch"])  # whole seconds, as backup_date is
    r = cv("ls", f"{snap['course']}@{snap['time']}")  # the time as printed
    assert r.code == 0, r
    mbz = tmp_path / "c.mbz"
    assert cv("export", snap["id"], "-o", mbz).code == 0
    r = cv("ingest", mbz, "--course", snap["course"], "--json")
    assert r.code == 0, r
    again = json.loads(r.out)
    again = again[0] if isinstance(again, list) else again
    rows = json.loads(cv("snapshots", "--json").out)
    assert [s["id"] for s in rows][-1] == again["snapshot"]  # filed after the one it repeats
    assert cv("ls", f"{snap['course']}@latest").code == 0
