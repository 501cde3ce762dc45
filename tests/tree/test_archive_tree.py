"""The archive-tree reader knows no archive format (tree/archive_tree.py)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from helpers import CORPUS_DIR, MINIMAL_BACKUP, write_tgz

from coursevault.api import ingest, resolve_snapshot
from coursevault.tree.archive_tree import (
    ArchiveIndex,
    ArchiveTree,
    Member,
    iter_member,
    load_archive,
    write_member,
)
from coursevault.tree.render import iter_document


def test_a_listing_member_is_rendered_by_the_function_given() -> None:
    """The member kept as a listing of the others (Moodle's .ARCHIVE_INDEX)
    is rendered by the caller's function, from the other members in order."""
    listing = Member(
        {"name": "list", "kind": "file", "size": 0, "content": "archive-index"}, None, 0, b"l"
    )
    members = [
        listing,
        Member({"name": "a/", "kind": "dir", "size": 0}, None, 7, b"a"),
        Member({"name": "a/b.xml", "kind": "file", "size": 3}, None, 9, b"b"),
    ]
    seen: list[tuple[str, bool, int, int]] = []

    def render(entries: Iterable[tuple[str, bool, int, int]]) -> bytes:
        seen.extend(entries)
        return b"rendered"

    def get(_oid: bytes) -> tuple[int, bytes]:
        raise AssertionError("a listing reads no object")

    out: list[bytes] = []
    write_member(get, ArchiveTree({}, members), listing, out.append, render)  # type: ignore[arg-type]
    assert out == [b"rendered"]
    assert seen == [("a/", True, 0, 7), ("a/b.xml", False, 3, 9)]


@pytest.mark.parametrize("collide", [False, True])
def test_the_index_finds_what_the_loaded_tree_holds(  # type: ignore[no-untyped-def]
    cv_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, collide: bool
) -> None:
    """ArchiveIndex (a restore's member list, kept compact) gives the members,
    folders and order that load_archive's list does, and None for a path
    the snapshot lacks -- also when every path has the same hash key (paths
    are sorted by a 64-bit key two may share; find compares the path)."""
    if collide:
        import coursevault.tree.archive_tree as archive_tree

        monkeypatch.setattr(archive_tree, "_path_key", lambda _path: 7)
    members: list[tuple[str, bytes | None]] = [
        ("moodle_backup.xml", MINIMAL_BACKUP),
        ("activities/", None),
        ("activities/page_1/", None),
        ("activities/page_1/blocks/", None),
        ("activities/page_1/blocks/html_3/", None),
        ("activities/page_1/blocks/html_2/", None),
        ("activities/page_1/page.xml", b"<activity><page/></activity>"),
        ("files/", None),
        ("files/ab/", None),
        ("files/ab/abcd", b"x" * 70_000),
    ]
    write_tgz(tmp_path / "a.mbz", members)
    snap = resolve_snapshot(cv_repo, ingest(cv_repo, str(tmp_path / "a.mbz")).snapshot)
    root = bytes.fromhex(snap.root)
    tree = load_archive(cv_repo.get, root)
    index = ArchiveIndex(cv_repo.get, root)
    assert list(index.members) == tree.members
    for m in tree.members:
        assert index.find(m.path) == m
        assert index.find("./" + m.path + ("/" if m.is_dir else "")) == m
    assert index.find("activities/page_2/page.xml") is None
    assert index.folders("activities/page_1/blocks") == ["html_3", "html_2"]
    assert index.folders("activities/page_1/blocks/") == ["html_3", "html_2"]
    assert index.folders("nowhere") == []


@pytest.mark.parametrize(
    "name",
    [
        "moodle2cc_sample_course_24.mbz",
        "question_type_coderunner_tests_fixtures_loadtesting_pseudocourse_backup.mbz",
    ],
)
def test_members_in_pieces_are_the_members(cv_repo, name: str) -> None:  # type: ignore[no-untyped-def]
    """iter_member (a restore parses members as they are rendered) gives
    every member of a real backup byte for byte as write_member does, and
    an XML member in pieces of about the size asked for: never whole."""
    snap = resolve_snapshot(cv_repo, ingest(cv_repo, str(CORPUS_DIR / name)).snapshot)
    index = ArchiveIndex(cv_repo.get, bytes.fromhex(snap.root))
    listing = lambda entries: repr(list(entries)).encode()  # noqa: E731
    largest = 0
    for m in index.members:
        whole: list[bytes] = []
        write_member(cv_repo.get, index, m, whole.append, listing)
        assert b"".join(iter_member(cv_repo.get, index, m, listing)) == b"".join(whole), m.path
        if m.content_kind == "xml" and m.content is not None:
            pieces = list(iter_document(cv_repo.get, m.content, piece_size=1024))
            assert b"".join(pieces) == b"".join(whole), m.path
            largest = max(largest, m.size)
            if m.size > 16 * 1024:
                assert len(pieces) >= 3 and max(map(len, pieces)) < m.size // 2, m.path
    assert largest > 16 * 1024  # the backup has a member large enough to be cut
