"""Ingest: one source (a .mbz archive) in, one snapshot out.

The source names its series, time and origin first (snapshot/source.py), so
the write session opens knowing what to compress against.  Streaming
throughout: members are read in archive order; XML members are
spooled (to disk past a few MiB) while hashed, then cut by the element
chunker -- unless the catalog knows those exact bytes from an earlier
snapshot, whose tree is then taken as it is -- and kept verbatim if they
cannot be cut exactly; other members are chunked by content.  Fragments are
slices of the input (snapshot/xmltree.py), so export is exact by
construction; the corpus tests check it for every archive.

All or nothing: any error aborts the write session, which deletes the packs it
wrote; the snapshot is written last, after everything it references is
durable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coursevault import __version__
from coursevault.errors import CoursevaultError, XmlError
from coursevault.history.times import format_time
from coursevault.moodle2.archive import ArchiveLayout, MemberInfo, zip_entry_fields
from coursevault.moodle2.archiveindex import INDEX_NAME, MAX_HELD_INDEX, render_archive_index
from coursevault.moodle2.filepool import Sha1Reader, claimed_contenthash
from coursevault.moodle2.tarformat import TarHeaderError, moodle_header
from coursevault.snapshot.memberentries import MemberEntries
from coursevault.snapshot.source import SPOOL_IN_MEMORY, ArchiveSource, Source, SourceHead
from coursevault.store.ids import ObjectId, ObjectType
from coursevault.store.repository import Repository, snapshot_dictionary
from coursevault.store.series import SnapshotDraft, parent_of
from coursevault.store.session import WriteSession
from coursevault.store.spool import ScratchSpool
from coursevault.store.stored_inputs import PendingInputs
from coursevault.tree.filechunks import store_content
from coursevault.tree.listbuilder import ListBuilder
from coursevault.tree.nodes import encode_archive, encode_member, encode_mtimes
from coursevault.tree.storedrows import check_stored_length
from coursevault.tree.xmlcheck import XmlSyntax
from coursevault.tree.xmlmember import Cut, store_xml_member

Progress = Callable[[int, int], None]


@dataclass
class IngestResult:
    snapshot: str
    course: str
    time: str
    archive: str
    format: str
    members: int = 0
    xml_files: int = 0
    elements: int = 0
    records: int = 0
    bytes_read: int = 0
    new_objects: int = 0
    new_bytes: int = 0
    stored_bytes: int = 0
    raw_xml: list[dict[str, str]] = field(default_factory=list)
    xml_reused: int = 0  # XML members stored before, taken from the catalog uncut
    xml_resumed_bytes: int = 0  # bytes of changed XML members not cut again (checkpoints)
    xml_grafted_bytes: int = 0  # and further on in them (grafted: XmlChunker._graft)
    # files/<sha1> members whose content has another SHA-1: Moodle's restore
    # looks files up by that name (moodle2/filepool.py); stored all the same
    files_misnamed: int = 0
    # files/<sha1> members of a content-addressed source taken unread (stored before)
    files_known: int = 0
    misnamed_files: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def text_chunker(config: dict[str, Any]) -> dict[str, int]:
    """Smaller chunks for text that grows by appending (moodle_backup.log, raw XML):
    a night's new lines then cost a few KiB, not the whole file again."""
    return dict(config.get("text_chunker") or {"min": 1024, "avg": 4096, "max": 16 * 1024})


def ingest_archive(
    repo: Repository,
    path: str,
    *,
    course: str | None = None,
    when: str | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Store one archive as a snapshot; see the module docstring for guarantees."""
    return ingest_source(repo, ArchiveSource(path, course=course, when=when), progress)


def ingest_source(
    repo: Repository,
    source: Source,
    progress: Progress | None = None,
    *,
    on_commit: Callable[[], None] | None = None,
) -> IngestResult:
    """Store one source as a snapshot of the series its head names.

    ``on_commit`` is called as the commit begins, past which the snapshot
    is stored whatever comes (a database backup holds Ctrl-C back there).

    The session opens compressing against the dictionary the series' newest
    snapshot at or before this one's time left (its parent, unless another
    night commits meanwhile): the catalog is synced first, as the nights
    before this one may have been ingested alongside it.
    """
    head = source.head
    repo.sync_catalog()
    operation = getattr(source, "operation", "ingest")  # what a prune waiting on it is told
    session = repo.writer(operation, dictionary=_next_dictionary(repo, head.key, head.epoch))
    try:
        return _ingest(session, repo, source, progress, on_commit)
    except BaseException:
        session.abort()
        raise


@dataclass
class _Stored:
    """What storing the members gave: each member's entry and content, the
    stored inputs to remember once the snapshot is committed (both spooled
    to disk, not held: a record a member), the .ARCHIVE_INDEX."""

    inputs: PendingInputs
    entries: MemberEntries
    index_raw: bytes | None = None


def _ingest(
    session: WriteSession,
    repo: Repository,
    source: Source,
    progress: Progress | None,
    on_commit: Callable[[], None] | None = None,
) -> IngestResult:
    head = source.head
    archive = os.path.basename(source.name)  # as the snapshot records it; errors name it as given
    result = IngestResult("", head.key, format_time(head.epoch), archive, source.layout.format)
    with PendingInputs() as inputs, MemberEntries() as entries:
        stored = _Stored(inputs, entries)
        _store_members(session, repo, source, result, progress, stored)
        snapshot = _commit(session, repo, source, result, stored, on_commit)
    result.snapshot = snapshot
    stats = session.stats
    result.new_objects = stats.new_objects
    result.new_bytes = stats.new_bytes
    result.stored_bytes = stats.stored_bytes
    if progress is not None:
        progress(result.bytes_read, 0)
    return result


def _commit(
    session: WriteSession,
    repo: Repository,
    source: Source,
    result: IngestResult,
    stored: _Stored,
    on_commit: Callable[[], None] | None = None,
) -> str:
    """The archive's tree and snapshot, committed; then, and only then, the
    stored inputs (an abort, an error before, leaves none)."""
    head = source.head
    root = _put_archive(session, source.layout, stored)
    # a course's first snapshot leaves its upper trees as the next night's
    # dictionary: what that night rewrites (docs/format.md, "Dictionaries").
    # Whether it is the first is known for sure only at commit; a dictionary
    # of the wrong kind costs only compression.
    first = not parent_of(repo.snapshots(head.key), head.epoch)
    next_dictionary = session.make_dictionary(walk=root if first else None)
    draft = SnapshotDraft(
        head.key, head.epoch, _record(session, head, root, next_dictionary, result)
    )
    if on_commit is not None:
        on_commit()
    snapshot = session.commit(draft) or ""
    if stored.inputs and snapshot:  # only now are the trees durable (and indexed)
        try:
            repo.stored_inputs.put(snapshot, stored.inputs)
        except CoursevaultError as exc:
            # the snapshot is committed: failing now would have a nightly
            # script store it again; what is lost is only a shortcut
            repo.notice(f"snapshot {snapshot[:12]} is stored, but the catalog did not keep "
                        f"how its XML members were cut ({exc}): the next night cuts them again")
    return snapshot


def _store_members(
    session: WriteSession,
    repo: Repository,
    source: Source,
    result: IngestResult,
    progress: Progress | None,
    stored: _Stored,
) -> None:
    """Store every member's content in archive order (streaming: one member
    at a time) into ``stored``."""
    chunker_cfg = repo.config["chunker"]
    text_cfg = text_chunker(repo.config)
    tgz = source.layout.format == "tgz"
    for member, stream in source.members():
        result.members += 1
        entry = _member_entry(member)
        content: ObjectId | None = None
        if entry["kind"] == "file":
            if member.path == INDEX_NAME and tgz and member.size <= MAX_HELD_INDEX:
                stored.index_raw = stream.read()
                stored.entries.hold_index(member, entry)
                result.bytes_read += len(stored.index_raw)
                continue
            if member.path.endswith(".xml"):
                content, rows = _store_xml(session, source, member, stream, text_cfg, result)
                entry["content"] = rows.kind
                stored.inputs.extend(rows.stored_inputs)
            else:
                cfg = chunker_cfg if member.path.startswith("files/") else text_cfg
                content = _store_blob(session, repo, source, member, stream, cfg, result, stored)
                entry["content"] = "blob"
            if content is None:
                entry["content"] = "empty"
        result.bytes_read += member.size
        stored.entries.append(member, entry, content)
        if progress is not None:  # each member: one can take seconds (a 20 MB forum.xml)
            progress(result.bytes_read, 0)
        session.refresh_lock()


def _member_entry(member: MemberInfo) -> dict[str, Any]:
    """What the member's M node keeps of its archive entry (not its content)."""
    entry: dict[str, Any] = {"name": member.name, "size": member.size}
    if member.link is not None:
        entry["kind"] = "link"
        entry["target"] = member.link
    else:
        entry["kind"] = "dir" if member.is_dir else "file"
    if member.tar_header is not None and member.tar_header != _canonical_header(member):
        entry["tar_header"] = member.tar_header.hex()
    if member.zip_info is not None:
        entry["zip"] = zip_entry_fields(member)
    return entry


def _store_xml(
    session: WriteSession,
    source: Source,
    member: MemberInfo,
    stream: Any,
    text_cfg: dict[str, int],
    result: IngestResult,
) -> tuple[ObjectId | None, Cut]:
    """Cut an XML member (or take its tree from the catalog), checking the
    tree's length against the member's size before anything names it."""
    result.xml_files += 1
    with ScratchSpool(max_size=SPOOL_IN_MEMORY) as spool:
        try:
            cut = store_xml_member(session, stream, spool, text_cfg, member.name)
        except XmlSyntax as exc:
            raise XmlError(source.name, str(exc), member.name) from None
    content = cut.content
    where = f"{os.path.basename(source.name)}: {member.name}"
    check_stored_length(session.get, content, cut.kind, member.size, where)
    if cut.raw_reason is not None:
        result.raw_xml.append({"member": member.name, "reason": cut.raw_reason})
    result.elements += cut.elements
    result.records += cut.records
    result.xml_reused += cut.reused
    result.xml_resumed_bytes += cut.resumed_at
    result.xml_grafted_bytes += cut.grafted
    return content, cut


def _store_blob(
    session: WriteSession,
    repo: Repository,
    source: Source,
    member: MemberInfo,
    stream: Any,
    cfg: dict[str, int],
    result: IngestResult,
    stored: _Stored,
) -> ObjectId | None:
    """Chunk a member by content; a files/<sha1> member's SHA-1 is checked on the way.

    A source whose file names are their contents' hashes by construction (a
    Moodle file store: ``Source.content_addressed``) has a file it stored
    before taken from the store unread -- a database backup's unchanged
    files cost nothing.  Each is read, and its name checked, the first time.
    """
    claimed = claimed_contenthash(member.path)
    key = _file_key(claimed) if claimed and getattr(source, "content_addressed", False) else None
    if key is not None:
        known = repo.stored_inputs.get(key)
        if known is not None and known[1].get("size") == member.size:
            stored.inputs.append((key, known[0], known[1]))  # this snapshot vouches too
            result.files_known += 1
            return known[0]
    hashed = Sha1Reader(stream) if claimed else None
    content, _ = store_content(session, hashed or stream, cfg)
    if hashed is not None and hashed.hexdigest() != claimed:
        result.misnamed_files.append({"member": member.name, "sha1": hashed.hexdigest()})
        result.files_misnamed += 1
    elif key is not None and content is not None:
        stored.inputs.append((key, content, {"size": member.size}))
    return content


def _file_key(sha1: str) -> bytes:
    """The stored-input key of a file-store content (not an XML member's key
    space: those are hashes of bytes, this names a SHA-1 the source vouches for)."""
    return b"moodle-filedir-sha1:" + sha1.encode("ascii")


def _put_archive(session: WriteSession, layout: ArchiveLayout, stored: _Stored) -> ObjectId:
    """The archive's tree: its members' list, their times, its container facts."""
    entries = stored.entries
    # .ARCHIVE_INDEX: regenerate it from the entries when that gives the same bytes
    index_body: bytes = b""  # the held .ARCHIVE_INDEX's (its record has none)
    index_content: ObjectId | None = None
    if stored.index_raw is not None and entries.index is not None:
        regen = render_archive_index(
            (m.name, m.is_dir, m.size, m.mtime) for m in entries if m.body is not None
        )
        _m, e = entries.index
        if regen == stored.index_raw:
            e["content"] = "archive-index"
        else:
            e["content"] = "blob"
            index_content = session.put(ObjectType.BLOB, stored.index_raw)
        index_body = encode_member(e)

    member_list = ListBuilder(session)
    mtimes: list[int] = []
    for m in entries:
        body, cid = (m.body, m.content) if m.body is not None else (index_body, index_content)
        member_list.append(session.put_tree([cid] if cid is not None else [], body))
        mtimes.append(m.mtime)
    times = session.put(ObjectType.BLOB, encode_mtimes(mtimes))
    return session.put_tree(
        [member_list.finish(), times],
        encode_archive(
            {
                "format": layout.format,
                "members": len(entries),
                "gzip_os": layout.gzip_os,
                "tar_trailer": layout.tar_trailer,
            }
        ),
    )


def _record(
    session: WriteSession,
    head: SourceHead,
    root: ObjectId,
    next_dictionary: ObjectId | None,
    result: IngestResult,
) -> Callable[[list[str]], dict[str, Any]]:
    def build(parents: list[str]) -> dict[str, Any]:
        """The record, once the store has chosen its parent (at commit, under
        the course's head update: another night may commit meanwhile)."""
        stats = session.stats  # after commit dropped what others stored meanwhile
        record = {
            "version": 1,
            "course": head.key,
            "time": format_time(head.epoch),
            "epoch": head.epoch,
            "root": root.hex(),
            "parents": parents,
            "source": head.fields,
            "stats": {
                "new_objects": stats.new_objects,
                "new_bytes": stats.new_bytes,
                "members": result.members,
                "xml_files": result.xml_files,
                "raw_xml_files": len(result.raw_xml),
                "records": result.records,
                "bytes": result.bytes_read,
            },
            "program": f"coursevault {__version__}",
        }
        if next_dictionary is not None:
            record["dictionary"] = next_dictionary.hex()
        return record

    return build


def _next_dictionary(repo: Repository, course: str, epoch: float) -> ObjectId | None:
    """The dictionary the snapshot this one will most likely follow left for
    the next night: the course's newest at or before ``epoch``."""
    rows = [r for r in repo.snapshots(course) if r.epoch <= epoch]
    return snapshot_dictionary(rows[-1].record) if rows else None


def _canonical_header(m: MemberInfo) -> bytes | None:
    try:
        return moodle_header(m.name, m.is_dir, m.size, m.mtime)
    except TarHeaderError:
        return None
