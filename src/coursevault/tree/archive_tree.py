"""Reading an archive snapshot's tree: layout, members, and member contents.

Shared by export, ``ls``, ``cat`` and diff, so there is one reader of the
``A``/``M`` node encodings.  It knows no archive format: a member stored as
regenerated from the others' listing (Moodle's ``.ARCHIVE_INDEX``) is
rendered by the function the caller passes in (:data:`ListingRenderer`), so
the tree layer stays below the format layer, as a database door needs.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from coursevault.errors import CorruptionError
from coursevault.store.ids import ID_SIZE, ObjectId, ObjectType
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
from coursevault.tree.render import iter_document, render_document

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
    layout, mtimes, members_root = _open_archive(get, root)
    members = [m for _node, _payload, m in _iter_members(get, root, mtimes, members_root)]
    return ArchiveTree(layout, members)


def _open_archive(get: Getter, root: ObjectId) -> tuple[dict[str, Any], list[int], ObjectId]:
    """An archive tree's layout, member times and the root of its member list."""
    try:
        _t, payload = get(root)
        refs, body = decode_tree(payload)
        layout = decode_json_node(body, b"A")
        members_root, mtimes_id = refs
        mtimes = decode_mtimes(get(mtimes_id)[1])
    except (NodeFormatError, ValueError, IndexError) as exc:
        raise CorruptionError(f"archive tree {root.hex()} is malformed: {exc}") from exc
    return layout, mtimes, members_root


def _iter_members(
    get: Getter, root: ObjectId, mtimes: list[int] | array[int], members_root: ObjectId
) -> Iterator[tuple[ObjectId, bytes, Member]]:
    """(node id, node payload, member) in archive order, each member read
    from its node as it comes."""
    count = 0
    try:
        for i, node in enumerate(iter_list(get, members_root)):
            _t, payload = get(node)
            yield node, payload, _decode_member(node, payload, mtimes[i])
            count += 1
    except (NodeFormatError, ValueError, IndexError) as exc:
        raise CorruptionError(f"archive tree {root.hex()} is malformed: {exc}") from exc
    if count != len(mtimes):
        raise CorruptionError(f"archive tree {root.hex()}: {count} members, {len(mtimes)} times")


def _decode_member(node: ObjectId, payload: bytes, mtime: int) -> Member:
    mrefs, mbody = decode_tree(payload)
    entry = decode_json_node(mbody, b"M")
    return Member(entry, mrefs[0] if mrefs else None, mtime, node)


class ArchiveIndex:
    """A snapshot's members found by path without holding them decoded (a
    restore).

    :func:`load_archive` keeps every member's decoded entry: 8.5 MB of
    dicts for an M course's 4,747 members, most of them file contents a
    restore finds in the site's file store already.  This reads the member
    list once, as a stream, and keeps per member its path and its node's
    id and stored bytes (about 110 bytes: a tenth of that), the ids and the
    bytes each in one buffer rather than an object per member (which took
    twice as much); :meth:`find` decodes the one asked for.  Reading the
    node again from the store instead cost an M restore 3 s of CPU: the
    restore asks in another order than the list's, and the node's block had
    left the cache.  Folders (the blocks of a course or an activity) are
    listed from the same pass.
    """

    def __init__(self, get: Getter, root: ObjectId) -> None:
        self._get = get
        self._root = root
        self.layout, mtimes, self._members_root = _open_archive(get, root)
        self._mtimes = array("q", mtimes)
        del mtimes
        self._at: dict[str, int] = {}  # path -> position of its first member
        self._ids = bytearray()  # node ids, ID_SIZE each, by position
        self._payloads = bytearray()  # node payloads one after another
        self._ends = array("q")  # where each position's payload ends
        self._folders: dict[str, list[str]] = {}
        for i, (node, payload, m) in enumerate(
            _iter_members(get, root, self._mtimes, self._members_root)
        ):
            if len(node) != ID_SIZE:
                raise CorruptionError(f"archive tree {root.hex()}: a member's id is malformed")
            self._ids += node
            self._payloads += payload
            self._ends.append(len(self._payloads))
            self._at.setdefault(m.path, i)
            if m.is_dir and "/" in m.path:
                parent, name = m.path.rsplit("/", 1)
                self._folders.setdefault(parent, []).append(name)
        # members find() handed out that write_member lists the others of
        self._found: dict[int, Member] = {}

    def _member(self, i: int) -> Member:
        node = bytes(self._ids[i * ID_SIZE : (i + 1) * ID_SIZE])
        start = self._ends[i - 1] if i else 0
        payload = bytes(self._payloads[start : self._ends[i]])
        return _decode_member(node, payload, self._mtimes[i])  # decoded once already

    def find(self, path: str) -> Member | None:
        """The member at ``path`` (the first, if an archive repeats one)."""
        want = path[2:] if path.startswith("./") else path
        i = self._at.get(want.rstrip("/"))
        if i is None:
            return None
        found = self._found.get(i)
        if found is None:
            found = self._member(i)
            if found.content_kind == "archive-index":
                self._found[i] = found  # write_member tells it from the others by identity
        return found

    def folders(self, path: str) -> list[str]:
        """Names of the folders right under ``path``, in archive order."""
        return list(self._folders.get(path.rstrip("/"), ()))

    @property
    def members(self) -> Iterator[Member]:
        """Every member in archive order."""
        for i in range(len(self._ends)):
            yield self._found.get(i) or self._member(i)


def write_member(
    get: Getter,
    tree: ArchiveTree | ArchiveIndex,
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
        _check_length(get, member, member.content)
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


def iter_member(
    get: Getter,
    tree: ArchiveTree | ArchiveIndex,
    member: Member,
    render_listing: ListingRenderer,
) -> Iterator[bytes]:
    """A member's exact bytes as :func:`write_member` writes them, in pieces
    rendered as they are taken (:func:`~coursevault.tree.render.iter_document`):
    a restore parses an XML member as it reads it.  The same checks, made
    before the first piece."""
    if member.content_kind == "xml" and member.content is not None:
        _check_length(get, member, member.content)
        return iter_document(get, member.content)
    pieces: list[bytes] = []
    write_member(get, tree, member, pieces.append, render_listing)
    return iter(pieces)


def _check_length(get: Getter, member: Member, content: ObjectId) -> None:
    try:
        length = document_length(get, content)
    except NodeFormatError as exc:
        raise CorruptionError(f"{member.name}: its document node is malformed: {exc}") from exc
    if length is not None and length != member.size:
        raise CorruptionError(
            f"{member.name}: its document renders {length} bytes, the member has {member.size}"
        )


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
