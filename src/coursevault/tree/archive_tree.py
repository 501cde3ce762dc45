"""Reading an archive snapshot's tree: layout, members, and member contents.

Shared by export, ``ls``, ``cat`` and diff, so there is one reader of the
``A``/``M`` node encodings.  It knows no archive format: a member stored as
regenerated from the others' listing (Moodle's ``.ARCHIVE_INDEX``) is
rendered by the function the caller passes in (:data:`ListingRenderer`), so
the tree layer stays below the format layer, as a database door needs.
"""

from __future__ import annotations

import os
import struct
import tempfile
from array import array
from bisect import bisect_left
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
    """A snapshot's members found by path without holding them (a restore).

    :func:`load_archive` keeps every member's decoded entry: 8.5 MB of dicts
    for an M course's 4,747 members.  This reads the member list once, as a
    stream, and writes each member's node id, node payload and path to a
    temporary file; what stays in memory is 24 bytes a member in three
    arrays (where its record starts, and its path's hash with its position,
    sorted for a binary search), so a restore's memory does not grow with
    the number of members (the paths kept as strings and the payloads in
    memory took an M course 2 MB more than an S course, most of it the heap
    fragmented by the small objects kept among the decoded entries).
    :meth:`find` reads and decodes the one asked for.  Reading the node
    again from the store instead cost an M restore 3 s of CPU: the restore
    asks in another order than the list's, and the node's block had left
    the cache.  Folders (the blocks of a course or an activity) are listed
    from the same pass.
    """

    def __init__(self, get: Getter, root: ObjectId) -> None:
        self._get = get
        self._root = root
        self.layout, mtimes, self._members_root = _open_archive(get, root)
        self._mtimes = array("q", mtimes)
        del mtimes
        # lives as long as the index (close(), or with the object)
        self._file = tempfile.TemporaryFile(prefix="coursevault-members-")  # noqa: SIM115
        self._starts = array("q")  # where each position's record starts in the file
        hashes = array("q")
        self._folders: dict[str, list[str]] = {}
        out = self._file  # buffered: flushed before the first pread
        end = 0
        for node, payload, m in _iter_members(get, root, self._mtimes, self._members_root):
            if len(node) != ID_SIZE:
                raise CorruptionError(f"archive tree {root.hex()}: a member's id is malformed")
            path = m.path.encode()
            self._starts.append(end)
            end += out.write(_RECORD.pack(len(payload)))
            end += out.write(node) + out.write(payload) + out.write(path)
            hashes.append(_path_key(path))
            if m.is_dir and "/" in m.path:
                parent, name = m.path.rsplit("/", 1)
                self._folders.setdefault(parent, []).append(name)
        out.flush()
        self._starts.append(end)
        # positions by their path's hash, equal hashes in archive order (a
        # stable sort): the first of a run that matches is the first member
        order = sorted(range(len(hashes)), key=hashes.__getitem__)
        self._hashes = array("q", (hashes[i] for i in order))
        self._positions = array("q", order)
        del order, hashes
        # members find() handed out that write_member lists the others of
        self._found: dict[int, Member] = {}

    def _record(self, i: int) -> tuple[bytes, bytes, bytes]:
        """(node id, node payload, path) of position ``i``."""
        start, end = self._starts[i], self._starts[i + 1]
        data = os.pread(self._file.fileno(), end - start, start)
        if len(data) != end - start:
            raise OSError(f"the restore's member list file lost {end - start - len(data)} bytes")
        (n_payload,) = _RECORD.unpack_from(data)
        at = _RECORD.size + ID_SIZE
        return data[_RECORD.size : at], data[at : at + n_payload], data[at + n_payload :]

    def _member(self, i: int, record: tuple[bytes, bytes, bytes] | None = None) -> Member:
        node, payload, _path = record or self._record(i)
        return _decode_member(node, payload, self._mtimes[i])  # decoded once already

    def _position(self, path: bytes) -> tuple[int, tuple[bytes, bytes, bytes]] | None:
        """The position of ``path`` and its record (read to compare the path)."""
        key = _path_key(path)
        j = bisect_left(self._hashes, key)
        while j < len(self._hashes) and self._hashes[j] == key:
            i = self._positions[j]
            record = self._record(i)
            if record[2] == path:
                return i, record
            j += 1
        return None

    def find(self, path: str) -> Member | None:
        """The member at ``path`` (the first, if an archive repeats one)."""
        want = path[2:] if path.startswith("./") else path
        at = self._position(want.rstrip("/").encode())
        if at is None:
            return None
        i, record = at
        found = self._found.get(i)
        if found is None:
            found = self._member(i, record)
            if found.content_kind == "archive-index":
                self._found[i] = found  # write_member tells it from the others by identity
        return found

    def folders(self, path: str) -> list[str]:
        """Names of the folders right under ``path``, in archive order."""
        return list(self._folders.get(path.rstrip("/"), ()))

    @property
    def members(self) -> Iterator[Member]:
        """Every member in archive order."""
        for i in range(len(self._starts) - 1):
            yield self._found.get(i) or self._member(i)

    def close(self) -> None:
        """Remove the temporary file now (it goes with the object otherwise)."""
        self._file.close()


# a member's record in an ArchiveIndex's file: its payload's length, then
# its node id, payload and path (to the record's end)
_RECORD = struct.Struct("<I")


def _path_key(path: bytes) -> int:
    """The 64-bit key an ArchiveIndex sorts a path by (Python's own hash of
    the bytes: the index lives in one process).  Two paths may share one;
    find compares the path itself."""
    return hash(path)


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
