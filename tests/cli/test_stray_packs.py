"""Files under ``packs/`` that are not packs (docs/format.md §1: readers
ignore them, with a warning, and no command deletes them).  An adversarial
pass found check counting ``packs/notes.txt`` as a pack that "prune
removes", prune and ``check --read-data`` failing on it with an internal
ValueError, and a pack file under the wrong ``<hh>`` "deleted" by prune
(which deleted nothing) and then unreadable to every check."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import MINIMAL_BACKUP, write_tgz


def test_stray_files_under_packs_are_ignored_said_and_kept(
    cv: Callable[..., Any], tmp_path: Path
) -> None:
    repo, mbz = tmp_path / "repo", tmp_path / "t.mbz"
    write_tgz(mbz, [("moodle_backup.xml", MINIMAL_BACKUP), ("course/course.xml", b"<course/>")])
    assert cv("init", repo).code == 0
    assert cv("-r", repo, "ingest", mbz).code == 0
    [pack] = [p for p in (repo / "packs").rglob("*") if p.is_file()]
    strays = [repo / "packs" / "notes.txt", pack.parent / f"{pack.name}~",
              pack.parent / "sub" / "x", repo / "packs" / "ff" / pack.name]
    for stray in strays:
        stray.parent.mkdir(exist_ok=True)
        stray.write_bytes(pack.read_bytes())
    for argv in (("check",), ("check", "--read-data"), ("prune",), ("repair", "packs"),
                 ("stats", "--json")):
        r = cv("-r", repo, *argv)
        assert r.code == 0, (argv, r)
        assert "internal error" not in r.err
    r = cv("-r", repo, "check", "--json")
    report = json.loads(r.out)
    assert report["packs"] == 1, report
    said = r.out + r.err
    assert all(f"ignoring packs/{s.relative_to(repo / 'packs')}" in said for s in strays), said
    assert all(s.exists() for s in strays) and pack.exists()
    assert json.loads(cv("-r", repo, "stats", "--json").out)["packs"] == 1
    [snapshot] = json.loads(cv("-r", repo, "snapshots", "--json").out)
    assert cv("-r", repo, "export", snapshot["id"], "-o", tmp_path / "x.mbz").code == 0
