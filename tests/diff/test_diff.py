"""diff: members, records and fields that changed; moves; cost that grows with the change."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import CORPUS

from coursevault.cli.app import main
from coursevault.diff.treediff import diff_snapshots
from coursevault.snapshot.ingest import ingest_archive
from coursevault.store.ids import ObjectId
from coursevault.store.repository import Repository
from coursevault.tree.sink import ObjectSink

BASE = {1: [(10, "hello"), (11, "world")], 2: [(20, "second")]}


def _snap(repo: Repository, path: Path, **kw: object) -> bytes:
    res = ingest_archive(repo, str(path), **kw)  # type: ignore[arg-type]
    return bytes.fromhex(repo.read_snapshot(res.snapshot)["root"])


def test_field_change_added_and_removed_records(
    cv_repo: Repository, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    a = _snap(cv_repo, write_course(tmp_path / "a.mbz", BASE))
    night2 = {1: [(10, "hello, edited"), (12, "new post")], 2: [(20, "second")]}
    b = _snap(cv_repo, write_course(tmp_path / "b.mbz", night2, date=1700086400))
    d = diff_snapshots(cv_repo.get, a, b)
    by = {(r.change, r.path.rsplit("/", 1)[-1]): r for r in d.records}
    mod = by[("modified", "post[@id=10]")]
    assert mod.member == "activities/forum_5/forum.xml"
    assert (
        mod.path == "/activity[@id=1]/forum[@id=1]/discussions/discussion[@id=1]/posts/post[@id=10]"
    )
    assert [(f.name, f.old, f.new) for f in mod.fields] == [("message", "hello", "hello, edited")]
    assert ("added", "post[@id=12]") in by and ("removed", "post[@id=11]") in by
    date = by[("modified", "information")]
    assert [(f.name, f.old, f.new) for f in date.fields] == [
        ("backup_date", "1700000000", "1700086400")
    ]
    assert d.counts() == {"added": 1, "removed": 1, "modified": 2, "moved": 0}
    assert {m.path for m in d.members} == {"activities/forum_5/forum.xml", "moodle_backup.xml"}


def test_moved_record_is_a_move(
    cv_repo: Repository, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    a = _snap(cv_repo, write_course(tmp_path / "a.mbz", BASE))
    moved = {1: [(10, "hello")], 2: [(20, "second"), (11, "world")]}
    b = _snap(cv_repo, write_course(tmp_path / "b.mbz", moved))
    d = diff_snapshots(cv_repo.get, a, b)
    moves = [r for r in d.records if r.change == "moved"]
    assert len(moves) == 1
    assert moves[0].path.endswith("discussion[@id=2]/posts/post[@id=11]")
    assert moves[0].moved_from and moves[0].moved_from.endswith(
        "discussion[@id=1]/posts/post[@id=11]"
    )
    assert not [r for r in d.records if r.change in ("added", "removed")]


def test_an_unchanged_record_behind_a_new_run_is_no_change(cv_repo: Repository) -> None:
    """studentquiz.xml's empty <progresses> holds records the next night: a run
    before the <rates> run, which is the same bytes in the same place.  It was
    reported moved to where it was."""
    during = sorted(p for p in CORPUS if "aggregated-during" in p.name)
    a, b = (_snap(cv_repo, p, course="sq") for p in during)
    d = diff_snapshots(cv_repo.get, a, b)
    assert not [r for r in d.records if r.change == "moved"]
    assert not [r for r in d.records if r.path.endswith("/rates")]
    assert ("added", "progresses") in {(r.change, r.tag) for r in d.records}


def test_activities_and_files_added_or_removed(
    cv_repo: Repository, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    a = _snap(cv_repo, write_course(tmp_path / "a.mbz", BASE))
    extra = [
        ("activities/page_6/", None),
        ("activities/page_6/page.xml", b'<activity id="2">\n</activity>'),
        ("files/", None),
        ("files/ab/", None),
        ("files/ab/abcdef", b"PDF bytes"),
    ]
    b = _snap(cv_repo, write_course(tmp_path / "b.mbz", BASE, extra=extra))
    d = diff_snapshots(cv_repo.get, a, b)
    added = {m.path for m in d.members if m.change == "added"}
    assert {"activities/page_6", "activities/page_6/page.xml", "files/ab/abcdef"} <= added
    back = diff_snapshots(cv_repo.get, b, a)
    assert {m.path for m in back.members if m.change == "removed"} == added
    only = diff_snapshots(cv_repo.get, a, b, "activities/page_6")
    assert {m.path for m in only.members} == {"activities/page_6", "activities/page_6/page.xml"}


def test_cost_grows_with_the_change_not_the_course(
    cv_repo: Repository, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    big = {d: [(d * 1000 + p, f"post {d}-{p} " * 5) for p in range(40)] for d in range(1, 101)}
    a = _snap(cv_repo, write_course(tmp_path / "a.mbz", big))
    big[50][7] = (50007, "edited")
    b = _snap(cv_repo, write_course(tmp_path / "b.mbz", big))
    reads = 0

    def counting_get(oid: bytes) -> tuple:  # type: ignore[type-arg]
        nonlocal reads
        reads += 1
        return cv_repo.get(oid)

    d = diff_snapshots(counting_get, a, b)
    assert [r.path.rsplit("/", 1)[-1] for r in d.records if r.change == "modified"][
        -1
    ] == "post[@id=50007]"
    assert reads < 80, reads  # 4,000 posts and 100 discussions in the course


def test_cli_diff_json_stat_and_cross_course(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    write_course: Callable[..., Path],
) -> None:
    monkeypatch.setenv("COURSEVAULT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSEVAULT_REPO", str(tmp_path / "repo"))
    assert main(["init"]) == 0
    a = write_course(tmp_path / "a.mbz", BASE)
    b = write_course(
        tmp_path / "b.mbz", {1: [(10, "changed")], 2: [(20, "second")]}, date=1700090000
    )
    assert main(["ingest", str(a), "--course", "orig"]) == 0
    assert main(["ingest", str(b), "--course", "copy"]) == 0
    capsys.readouterr()
    assert main(["diff", "orig@latest", "copy@latest", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["modified"] == 2 and data["counts"]["removed"] == 1
    assert any(
        f["field"] == "message" and f["new"] == "changed"
        for r in data["records"]
        for f in r.get("fields", [])
    )
    assert main(["diff", "orig", "copy", "--stat"]) == 0
    out = capsys.readouterr().out
    assert "activities/forum_5" in out and "2 members changed" in out
    assert main(["diff", "orig", "nope@latest"]) == 2
    capsys.readouterr()
    # a path narrows the diff; one that names no member is refused, not "no change"
    assert main(["diff", "orig", "copy", "activities/forum_5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["modified"] == 1
    assert main(["diff", "orig", "copy", "activities/forum_55"]) == 2
    assert "neither snapshot has a member at 'activities/forum_55'" in capsys.readouterr().err
    assert main(["diff", "orig", "orig", "activities/forum_5"]) == 0  # the same: no lines
    assert capsys.readouterr().out == ""


def test_documents_stored_before_d_nodes_named_their_length_are_no_change(
    cv_repo: Repository,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_course: Callable[..., Path],
) -> None:
    """A night stored by a version whose ``D`` nodes named only the root, and
    the same bytes stored since: the members are the same, not modified."""
    from coursevault.snapshot import ingest
    from coursevault.tree import xmlmember, xmltree

    extra: list[tuple[str, bytes | None]] = [
        ("course/", None),
        ("course/course.xml", b'<?xml version="1.0"?>\n<course id="1">\n  <a>1</a>\n</course>'),
    ]

    def old_store(self: xmltree.ChunkResult, sink: ObjectSink) -> ObjectId:
        return sink.put_tree([self.root], self.body)

    with monkeypatch.context() as m:  # the older version
        m.setattr(xmltree.ChunkResult, "store", old_store)
        m.setattr(ingest, "check_stored_length", lambda *_a: None, raising=False)
        m.setattr(xmlmember, "seal_row", lambda *row: row, raising=False)
        a = _snap(cv_repo, write_course(tmp_path / "a.mbz", BASE, extra=extra))
    night2 = {1: [(10, "hello, edited"), (11, "world")], 2: [(20, "second")]}
    b = _snap(cv_repo, write_course(tmp_path / "b.mbz", night2, 1700086400, extra))
    d = diff_snapshots(cv_repo.get, a, b)
    assert sorted(m.path for m in d.members) == [
        "activities/forum_5/forum.xml",
        "moodle_backup.xml",
    ]


def test_groups_follow_the_layout_they_are_given() -> None:
    """Moodle's layout groups by default; the walk itself knows none."""
    from coursevault.diff.treediff import MemberChange, TreeDiff

    d = TreeDiff(members=[MemberChange("added", "activities/forum_7/forum.xml", "file", None, 3)])
    assert list(d.groups()) == ["activities/forum_7"]
    assert list(d.groups(lambda path, _field: path.rsplit("/", 1)[-1])) == ["forum.xml"]


def test_a_hard_link_whose_target_changed_is_a_changed_member(
    cv_repo: Repository, tmp_path: Path, write_course: Callable[..., Path]
) -> None:
    """A link has no content: two snapshots that differed only in where
    a hard link pointed diffed as identical, though their exports differ."""
    import gzip
    import io
    import tarfile

    base = write_course(tmp_path / "base.mbz", BASE)

    def with_link(name: str, target: str) -> Path:
        out = io.BytesIO()
        with tarfile.open(base) as src, tarfile.open(fileobj=out, mode="w",
                                                     format=tarfile.USTAR_FORMAT) as dst:
            for m in src.getmembers():
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
            link = tarfile.TarInfo("linked")
            link.type, link.linkname, link.mtime = tarfile.LNKTYPE, target, 1700000000
            dst.addfile(link)
        path = tmp_path / name
        path.write_bytes(gzip.compress(out.getvalue()))
        return path

    a = _snap(cv_repo, with_link("a.mbz", "moodle_backup.xml"), course="l")
    b = _snap(cv_repo, with_link("b.mbz", "activities/forum_5/forum.xml"), course="l",
              when="2030-01-01")
    assert [m.path for m in diff_snapshots(cv_repo.get, a, b).members] == ["linked"]
