"""Reading an archive snapshot's tree: layout, members, and member contents.

Shared by export, ``ls``, ``cat`` and diff, so there is one reader of the
``A``/``M`` node encodings.  It knows no archive format: a member stored as
regenerated from the others' listing (Moodle's ``.ARCHIVE_INDEX``) is
rendered by the function the caller passes in (:data:`ListingRenderer`), so
the tree layer stays below the format layer, as a database door needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from coursevault.errors import CorruptionError
from coursevault.store.ids import ObjectId, ObjectType
from coursevault.store.treecodec import decode_tree
from coursevault.tree.nodes import (
    Getter,
    NodeFormatError,
    decode_chunked,
    decode_json_node,
    decode_mtimes,
    document_length,
    iter_list,
)
from coursevault.tree.render import render_document

# (name, is_dir, size, mtime) of the other members, in archive order -> the
# bytes of a member regenerated from them (moodle2.archiveindex.render_archive_index)
ListingRenderer = Callable[[Iterable[tuple[str, bool, int, int]]], bytes]


@dataclass(frozen=True)
class Member:
    """One archive entry as stored in a snapshot."""

    entry: dict[str, Any]
    content: ObjectId | None
    mtime: int
    node: ObjectId

    @property
    def name(self) -> str:
        return str(self.entry["name"])

    @property
    def path(self) -> str:
        n = self.name[2:] if self.name.startswith("./") else self.name
        return n.rstrip("/")

    @property
    def kind(self) -> str:
        return str(self.entry["kind"])

    @property
    def is_dir(self) -> bool:
        return self.kind == "dir"

    @property
    def size(self) -> int:
        return int(self.entry["size"])

    @property
    def content_kind(self) -> str:
        return str(self.entry.get("content", ""))


@dataclass
class ArchiveTree:
    layout: dict[str, Any]
    members: list[Member]
    _index: dict[str, Member] | None = field(default=None, repr=False, compare=False)

    def find(self, path: str) -> Member | None:
        """The member at ``path`` (the first, if an archive repeats one):
        indexed on first use, as a restore asks for hundreds of members."""
        want = path[2:] if path.startswith("./") else path
        want = want.rstrip("/")
        if self._index is None:
            self._index = {}
            for m in self.members:
                self._index.setdefault(m.path, m)
        return self._index.get(want)


def load_archive(get: Getter, root: ObjectId) -> ArchiveTree:
    try:
        _t, payload = get(root)
        refs, body = decode_tree(payload)
        layout = decode_json_node(body, b"A")
        members_root, mtimes_id = refs
        mtimes = decode_mtimes(get(mtimes_id)[1])
        members = []
        for i, node in enumerate(iter_list(get, members_root)):
            _t, mp = get(node)
            mrefs, mbody = decode_tree(mp)
            entry = decode_json_node(mbody, b"M")
            members.append(Member(entry, mrefs[0] if mrefs else None, mtimes[i], node))
    except (NodeFormatError, ValueError, IndexError) as exc:
        raise CorruptionError(f"archive tree {root.hex()} is malformed: {exc}") from exc
    if len(members) != len(mtimes):
        raise CorruptionError(
            f"archive tree {root.hex()}: {len(members)} members, {len(mtimes)} times"
        )
    return ArchiveTree(layout, members)


def write_member(
    get: Getter,
    tree: ArchiveTree,
    member: Member,
    write: Callable[[bytes], object],
    render_listing: ListingRenderer,
) -> None:
    """Write a member's exact bytes through ``write``; a member kept as a
    listing of the others (``archive-index``) is rendered by ``render_listing``.

    A document whose ``D`` node names another length than the member's is
    refused before a byte is written (the zip writer, unlike tar's, does not
    count), and so is one whose length blob is lost: every object a
    snapshot reaches is read, so export refuses exactly the snapshots
    ``check`` finds damaged, which the guide's repair forgets before a prune.
    """
    kind = member.content_kind
    if kind == "xml" and member.content is not None:
        try:
            length = document_length(get, member.content)
        except NodeFormatError as exc:
            raise CorruptionError(f"{member.name}: its document node is malformed: {exc}") from exc
        if length is not None and length != member.size:
            raise CorruptionError(
                f"{member.name}: its document renders {length} bytes, the member has {member.size}"
            )
        render_document(get, member.content, write)
    elif kind == "archive-index":
        write(
            render_listing(
                (m.name, m.is_dir, m.size, m.mtime) for m in tree.members if m is not member
            )
        )
    elif member.content is not None:
        for chunk in iter_blob(get, member.content):
            write(chunk)


def content_length(get: Getter, content: ObjectId, kind: str) -> int | None:
    """How many bytes a member's stored content renders to, read from node
    metadata (a ``D`` node's length blob, a ``C`` node's chunk sizes, a
    blob's length) without rendering it; None for a document stored before
    ``D`` nodes named their length."""
    if kind == "xml":
        return document_length(get, content)
    t, payload = get(content)
    if t == ObjectType.BLOB:
        return len(payload)
    return sum(decode_chunked(decode_tree(payload)[1]))


def iter_blob(get: Getter, oid: ObjectId) -> Iterator[bytes]:
    """The bytes of a blob or of a chunked (``C``) content tree."""
    t, payload = get(oid)
    if t == ObjectType.BLOB:
        yield payload
        return
    refs, _body = decode_tree(payload)
    for ref in refs:
        _t, chunk = get(ref)
        yield chunk
