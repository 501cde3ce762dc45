"""A big XML member that changed only towards its end is cut from the last
checkpoint before the change, and stored exactly as a whole cut would store it."""

from __future__ import annotations

import gzip
import io
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import read_members, write_tgz

from coursevault.errors import XmlError
from coursevault.restore.export import export_snapshot
from coursevault.snapshot.ingest import IngestResult, ingest_archive
from coursevault.store.check import check_repository
from coursevault.store.repository import Repository
from coursevault.tree import graft, xmlmember


def _discussions(n: int, night: int, edit: int | None = None) -> dict[int, list[tuple[int, str]]]:
    """``n`` discussions of 6 posts; each night adds a post to the last
    discussion; ``edit`` rewrites one post's text."""
    rng = random.Random(3)
    out: dict[int, list[tuple[int, str]]] = {}
    pid = 1000
    for d in range(1, n + 1):
        out[d] = []
        for _ in range(6):
            text = " ".join(f"w{rng.randrange(10**5)}" for _ in range(12))
            out[d].append((pid, "edited " + text if pid == edit else text))
            pid += 1
    for k in range(night):
        out[n].append((9000 + k, f"new post of night {k}"))
    return out


def _root(repo: Repository, snap: str) -> str:
    return str(repo.read_snapshot(snap)["root"])


def _as_whole_cuts(
    repo: Repository, tmp_path: Path, nights: list[Path], results: list[IngestResult]
) -> None:
    """Each night's snapshot is what a whole cut gives (in a catalog that
    never saw a checkpoint: nothing resumed, grafted or reused), and exports
    back to its archive."""
    for i, (path, result) in enumerate(zip(nights, results, strict=True)):
        other = Repository.open(repo.backend, cache_dir=tmp_path / f"other-{i}")
        again = ingest_archive(other, str(path))
        assert again.xml_resumed_bytes == again.xml_grafted_bytes == again.xml_reused == 0
        assert (again.elements, again.records) == (result.elements, result.records)
        assert _root(other, again.snapshot) == _root(repo, result.snapshot)
        out = tmp_path / f"{result.snapshot[:8]}.mbz"
        export_snapshot(repo, result.snapshot, str(out))
        assert gzip.decompress(out.read_bytes()) == gzip.decompress(path.read_bytes())
    assert check_repository(repo, read_data=True).ok


@pytest.fixture
def small_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xmlmember, "CHECKPOINT_EVERY", 4096)  # many checkpoints in a small file


def test_a_member_changed_at_its_end_is_resumed(
    cv_repo: Repository, tmp_path: Path, small_points: None, write_course: Callable[..., Path]
) -> None:
    nights = [
        write_course(tmp_path / f"n{k}.mbz", _discussions(60, k), 1700000000 + k * 86400)
        for k in range(3)
    ]
    results = [ingest_archive(cv_repo, str(p)) for p in nights]
    assert results[0].xml_resumed_bytes == 0
    assert all(r.xml_resumed_bytes > 50_000 for r in results[1:])  # most of a 60 kB forum.xml
    # the grafting hashes a resumed cut kept from the night before are tonight's
    name = "activities/forum_5/forum.xml"
    data = next(b for n, _d, b in read_members(nights[-1]) if n == name)
    found = cv_repo.stored_inputs.get(xmlmember.points_key(name, data))
    assert found is not None
    info = found[1]["grafts"]
    assert len(info["bounds"]) > 3
    assert info == graft.graft_info(io.BytesIO(data), found[1]["points"], {})
    _as_whole_cuts(cv_repo, tmp_path, nights, results)


def test_a_change_near_the_top_is_cut_from_the_top(
    cv_repo: Repository, tmp_path: Path, small_points: None, write_course: Callable[..., Path]
) -> None:
    first = write_course(tmp_path / "a.mbz", _discussions(60, 0), 1700000000)
    second = write_course(tmp_path / "b.mbz", _discussions(60, 0, edit=1001), 1700086400)
    ingest_archive(cv_repo, str(first))
    result = ingest_archive(cv_repo, str(second))
    assert result.xml_resumed_bytes < 4096  # the edited post is in the first discussion
    other = Repository.open(cv_repo.backend, cache_dir=tmp_path / "other-cache")
    again = ingest_archive(other, str(second))
    assert _root(other, again.snapshot) == _root(cv_repo, result.snapshot)


def test_a_shorter_member_and_a_damaged_checkpoint_are_cut_whole(
    cv_repo: Repository,
    tmp_path: Path,
    small_points: None,
    monkeypatch: pytest.MonkeyPatch,
    write_course: Callable[..., Path],
) -> None:
    ingest_archive(cv_repo, str(write_course(tmp_path / "a.mbz", _discussions(60, 0))))
    shorter = write_course(tmp_path / "b.mbz", _discussions(20, 0), 1700086400)
    result = ingest_archive(cv_repo, str(shorter))  # the first 19 discussions are the same
    other = Repository.open(cv_repo.backend, cache_dir=tmp_path / "other-cache")
    assert _root(other, ingest_archive(other, str(shorter)).snapshot) == _root(
        cv_repo, result.snapshot
    )

    # a state the chunker cannot take (another version's, say) means a whole cut
    def refuse(*_args: object, **_kw: object) -> None:
        raise KeyError("stack")

    monkeypatch.setattr(xmlmember.XmlChunker, "resume", refuse)
    longer = write_course(tmp_path / "c.mbz", _discussions(20, 1), 1700172800)
    result = ingest_archive(cv_repo, str(longer))
    assert result.xml_resumed_bytes == 0
    assert _root(other, ingest_archive(other, str(longer)).snapshot) == _root(
        cv_repo, result.snapshot
    )


def test_malformed_xml_after_a_checkpoint_is_refused_at_its_line(
    cv_repo: Repository, tmp_path: Path, small_points: None, write_course: Callable[..., Path]
) -> None:
    ingest_archive(cv_repo, str(write_course(tmp_path / "a.mbz", _discussions(60, 0))))
    good = write_course(tmp_path / "b.mbz", _discussions(60, 1), 1700086400)
    members = [(n, None if d else b) for n, d, b in read_members(good)]
    forum = next(i for i, (n, _b) in enumerate(members) if n.endswith("forum.xml"))
    data = members[forum][1]
    assert data is not None
    at = data.rindex(b"</subject>")
    members[forum] = (members[forum][0], data[:at] + b"</subjekt>" + data[at + 10 :])
    line = data[:at].count(b"\n") + 1
    bad = tmp_path / "bad.mbz"
    write_tgz(bad, [(n, b) for n, b in members if not n.endswith(".ARCHIVE_INDEX")])
    before = cv_repo.stats()["pack_bytes"]
    with pytest.raises(XmlError, match=rf"forum\.xml.*line {line}"):
        ingest_archive(cv_repo, str(bad))
    assert cv_repo.stats()["pack_bytes"] == before  # nothing of it left


def test_a_state_damaged_in_the_catalog_is_passed_over(
    cv_repo: Repository, tmp_path: Path, small_points: None, write_course: Callable[..., Path]
) -> None:
    """A checkpoint whose state does not match its seal would store a wrong
    tree if resumed from: it is skipped, and an earlier one (or none) used."""
    first = ingest_archive(cv_repo, str(write_course(tmp_path / "a.mbz", _discussions(60, 0))))
    name = "activities/forum_5/forum.xml"
    data = next(b for n, _d, b in read_members(tmp_path / "a.mbz") if n == name)
    key = xmlmember.points_key(name, data)
    found = cv_repo.stored_inputs.get(key)
    assert found is not None
    tree, notes = found
    points = notes["points"]
    assert len(points) > 3
    last_state = points[-1][2]
    last_state["records"] += 1  # counts no tree depends on ... but the seal does
    for point in points[:-1]:
        point[2]["stack"][-1]["nchild"] += 1  # would miscount children
    cv_repo.stored_inputs.put(first.snapshot, [(key, tree, notes)])
    night = write_course(tmp_path / "b.mbz", _discussions(60, 1), 1700086400)
    result = ingest_archive(cv_repo, str(night))
    assert result.xml_resumed_bytes == 0  # every state damaged: a whole cut
    other = Repository.open(cv_repo.backend, cache_dir=tmp_path / "other-cache")
    assert _root(other, ingest_archive(other, str(night)).snapshot) == _root(
        cv_repo, result.snapshot
    )


# -- grafting: a change near the top, the same bytes below it -----------------------


def _quiz(night: int) -> bytes:
    """A quiz.xml as Moodle writes it: the grades (which change every night)
    above the attempts (which only grow)."""
    rng = random.Random(5)
    grades = "".join(
        f'\n      <grade id="{u}">\n        <userid>{u}</userid>\n        <gradeval>'
        f"{(u * 7 + (night if u == 3 else 0)) % 10}.00000</gradeval>\n      </grade>"
        for u in range(1, 40)
    )
    attempts = []
    for a in range(1, 120 + night):
        steps = "".join(
            f'\n              <step id="{a * 10 + s}">\n                <state>s{s}</state>'
            f"\n                <response>r{rng.randrange(10**6)}</response>\n              </step>"
            for s in range(3)
        )
        attempts.append(
            f'\n      <attempt id="{a}">\n        <userid>{a % 40}</userid>'
            f'\n        <question_usage id="{a}">\n          <steps>{steps}'
            f"\n          </steps>\n        </question_usage>\n      </attempt>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<activity id="2" moduleid="6" modulename="quiz" contextid="10">\n  <quiz id="2">'
        f"\n    <name>Q</name>\n    <grades>{grades}\n    </grades>"
        f"\n    <attempts>{''.join(attempts)}\n    </attempts>\n  </quiz>\n</activity>"
    ).encode()


def _quiz_night(
    write_course: Callable[..., Path], tmp_path: Path, night: int, quiz: bytes | None = None
) -> Path:
    extra: list[tuple[str, bytes | None]] = [
        ("activities/quiz_6/", None),
        ("activities/quiz_6/quiz.xml", quiz if quiz is not None else _quiz(night)),
    ]
    return write_course(
        tmp_path / f"q{night}.mbz", _discussions(3, night), 1700000000 + night * 86400, extra
    )


@pytest.fixture
def small_grafts(monkeypatch: pytest.MonkeyPatch, small_points: None) -> None:
    monkeypatch.setattr(graft, "MIN_GRAFT", 2048)
    monkeypatch.setattr(graft, "PROBE", 256)


def test_a_change_near_the_top_is_grafted_past(
    cv_repo: Repository, tmp_path: Path, small_grafts: None, write_course: Callable[..., Path]
) -> None:
    """A quiz's grades change every night: no checkpoint comes before the
    change, but the attempts below are jumped over to the night before's
    last checkpoint in them -- and the trees are a whole cut's."""
    nights = [_quiz_night(write_course, tmp_path, k) for k in range(4)]
    size = len(_quiz(3))
    results = [ingest_archive(cv_repo, str(p)) for p in nights]
    assert results[0].xml_grafted_bytes == 0
    assert all(r.xml_grafted_bytes > size * 0.8 for r in results[1:])
    _as_whole_cuts(cv_repo, tmp_path, nights, results)


def test_a_graft_whose_state_or_bytes_differ_is_not_taken(
    cv_repo: Repository, tmp_path: Path, small_grafts: None, write_course: Callable[..., Path]
) -> None:
    first = ingest_archive(cv_repo, str(_quiz_night(write_course, tmp_path, 0)))
    name = "activities/quiz_6/quiz.xml"
    key = xmlmember.points_key(name, _quiz(0))
    found = cv_repo.stored_inputs.get(key)
    assert found is not None
    tree, notes = found
    assert notes["grafts"]["tags"]
    for point in notes["points"]:
        for item in point[2]["stack"]:
            item["nchild"] += 1  # would miscount children, but the sums say so
    cv_repo.stored_inputs.put(first.snapshot, [(key, tree, notes)])
    night = _quiz_night(write_course, tmp_path, 1)
    result = ingest_archive(cv_repo, str(night))
    assert result.xml_grafted_bytes == 0
    other = Repository.open(cv_repo.backend, cache_dir=tmp_path / "other-cache")
    assert _root(other, ingest_archive(other, str(night)).snapshot) == _root(
        cv_repo, result.snapshot
    )
    # every attempt's response changed: the bytes below the grades are other bytes
    changed = _quiz(2).replace(b"<response>r", b"<response>x")
    result = ingest_archive(cv_repo, str(_quiz_night(write_course, tmp_path, 2, changed)))
    assert result.xml_grafted_bytes == 0


def test_malformed_xml_past_a_graft_is_refused_at_its_line(
    cv_repo: Repository, tmp_path: Path, small_grafts: None, write_course: Callable[..., Path]
) -> None:
    ingest_archive(cv_repo, str(_quiz_night(write_course, tmp_path, 0)))
    quiz = _quiz(1)
    at = quiz.rindex(b"</state>")
    bad_quiz = quiz[:at] + b"</stat>" + quiz[at + 8 :]
    line = quiz[:at].count(b"\n") + 1
    before = cv_repo.stats()["pack_bytes"]
    with pytest.raises(XmlError, match=rf"quiz\.xml.*line {line}"):
        ingest_archive(cv_repo, str(_quiz_night(write_course, tmp_path, 1, bad_quiz)))
    assert cv_repo.stats()["pack_bytes"] == before  # nothing of it left


def test_checkpoints_are_keyed_by_a_root_with_ids_or_else_by_the_first_mib() -> None:
    key = xmlmember.points_key
    quiz = _quiz(0)
    name = "activities/quiz_6/quiz.xml"
    # an activity: its root's ids, whatever changes below (the grades)
    assert key(name, quiz) == key(name, _quiz(5))
    assert key(name, quiz) != key(name, quiz.replace(b'contextid="10"', b'contextid="11"'))
    assert key(name, quiz) != key("activities/quiz_7/quiz.xml", quiz)
    # a bare root (users.xml): its first MiB, so two courses' seldom share one
    users = b'<?xml version="1.0" encoding="UTF-8"?>\n<users>\n' + b"<user>a</user>\n" * 80_000
    assert key("users.xml", users) != key("users.xml", users.replace(b">a<", b">b<", 1))
    assert key("users.xml", users) == key("users.xml", users + b"<more/>")


# -- checkpoint rows damaged in the catalog (issue 20) ------------------------------


def _two_forums(
    forum_xml: Callable[..., bytes], write_course: Callable[..., Path], tmp_path: Path, night: int
) -> Path:
    """forum_5 and forum_6, the same but for one letter near the top: the
    same elements at the same offsets, other bytes before every checkpoint."""
    forum = forum_xml(_discussions(60, night))
    at = forum.index(b"<message>w") + len(b"<message>")
    other = forum[:at] + b"v" + forum[at + 1 :]
    extra: list[tuple[str, bytes | None]] = [
        ("activities/forum_6/", None),
        ("activities/forum_6/forum.xml", other),
    ]
    return write_course(
        tmp_path / f"ff{night}.mbz", _discussions(60, night), 1700000000 + night * 86400, extra
    )


@pytest.mark.parametrize("columns", ["content, info", "info"])
def test_checkpoint_rows_swapped_in_the_catalog_are_passed_over(
    cv_repo: Repository,
    tmp_path: Path,
    small_points: None,
    columns: str,
    forum_xml: Callable[..., bytes],
    write_course: Callable[..., Path],
) -> None:
    """The two forums' checkpoint rows swapped in the catalog file: their
    states fit the other forum's elements and offsets, but not the bytes
    before them, which each state is sealed with -- so neither is resumed
    from, and the next night's trees are a whole cut's."""
    nights = [_two_forums(forum_xml, write_course, tmp_path, k) for k in range(2)]
    ingest_archive(cv_repo, str(nights[0]))
    members = {n: b for n, _d, b in read_members(nights[0])}
    keys = [
        xmlmember.points_key(name, members[name])
        for name in ("activities/forum_5/forum.xml", "activities/forum_6/forum.xml")
    ]
    url = cv_repo.catalog.url
    with sqlite3.connect(url[len("sqlite:///") :]) as db:
        rows = [
            db.execute(
                f"SELECT {columns} FROM cv_stored_inputs WHERE input_id = ?", (key,)
            ).fetchone()
            for key in keys
        ]
        assert all(row is not None and "points" in row[-1] for row in rows)
        sets = ", ".join(f"{c.strip()} = ?" for c in columns.split(","))
        for key, row in zip(keys, rows[::-1], strict=True):
            db.execute(f"UPDATE cv_stored_inputs SET {sets} WHERE input_id = ?", (*row, key))
    result = ingest_archive(cv_repo, str(nights[1]))
    assert result.xml_resumed_bytes == 0
    _as_whole_cuts(cv_repo, tmp_path, nights[1:], [result])
