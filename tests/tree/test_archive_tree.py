"""The archive-tree reader knows no archive format (tree/archive_tree.py)."""

from __future__ import annotations

from collections.abc import Iterable

from coursevault.tree.archive_tree import ArchiveTree, Member, write_member


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
