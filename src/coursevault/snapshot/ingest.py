"""Ingest: one .mbz archive in, one snapshot out.

Streaming throughout: members are read in archive order; XML members are
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
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coursevault import __version__
from coursevault.errors import ArchiveError, BadInputError, XmlError
from coursevault.history.times import format_time, parse_time
from coursevault.moodle2.archive import MemberInfo, iter_members, zip_entry_fields
from coursevault.moodle2.archiveindex import INDEX_NAME, render_archive_index
from coursevault.moodle2.backupinfo import BackupInfo, BackupInfoError, read_backup_info
from coursevault.moodle2.filepool import Sha1Reader, claimed_contenthash
from coursevault.moodle2.tarformat import TarHeaderError, moodle_header
from coursevault.store.ids import ObjectId, ObjectType
from coursevault.store.repository import Repository, snapshot_dictionary
from coursevault.store.series import SnapshotDraft, parent_of
from coursevault.store.session import WriteSession
from coursevault.tree.filechunks import store_content
from coursevault.tree.listbuilder import ListBuilder
from coursevault.tree.nodes import encode_archive, encode_member, encode_mtimes
from coursevault.tree.storedrows import check_stored_length
from coursevault.tree.xmlmember import store_xml_member
from coursevault.tree.xmltree import XmlSyntax

SPOOL_IN_MEMORY = 4 << 20
COURSE_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

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
    misnamed_files: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def text_chunker(config: dict[str, Any]) -> dict[str, int]:
    """Smaller chunks for text that grows by appending (moodle_backup.log, raw XML):
    a night's new lines then cost a few KiB, not the whole file again."""
    return dict(config.get("text_chunker") or {"min": 1024, "avg": 4096, "max": 16 * 1024})


def validate_course_key(key: str) -> str:
    if not key or len(key) > 200 or not set(key) <= COURSE_KEY_CHARS:
        raise BadInputError(
            f"invalid course key {key!r}: use letters, digits, '.', '_' and '-' (at most 200)"
        )
    return key


def ingest_archive(
    repo: Repository,
    path: str,
    *,
    course: str | None = None,
    when: str | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Store one archive as a snapshot; see the module docstring for guarantees."""
    archive = os.path.basename(path)  # as the snapshot records it; errors name `path` as given
    layout, members = iter_members(path)
    total = os.path.getsize(path)
    if course is not None and when is not None:
        dictionary = _next_dictionary(repo, course, parse_time(when))
        session = repo.writer("ingest", dictionary=dictionary)
    else:  # the course or time is named in moodle_backup.xml, read on the way
        session = repo.writer("ingest", defer_dictionary=True)
    try:
        result = _ingest(
            session, repo, path, archive, layout, members, course, when, progress, total
        )
    except BaseException:
        session.abort()
        raise
    return result


def _ingest(
    session: WriteSession,
    repo: Repository,
    path: str,
    archive: str,
    layout: Any,
    members: Any,
    course: str | None,
    when: str | None,
    progress: Progress | None,
    total: int,
) -> IngestResult:
    result = IngestResult("", "", "", archive, layout.format)
    chunker_cfg = repo.config["chunker"]
    text_cfg = text_chunker(repo.config)
    entries: list[tuple[MemberInfo, dict[str, Any], ObjectId | None]] = []
    remember: list[tuple[bytes, ObjectId, dict[str, Any]]] = []
    index_raw: bytes | None = None
    index_pos = -1
    info: BackupInfo | None = None
    for member, stream in members:
        result.members += 1
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
        content: ObjectId | None = None
        if entry["kind"] == "file":
            if member.path == INDEX_NAME and layout.format == "tgz":
                index_raw = stream.read()
                index_pos = len(entries)
                entries.append((member, entry, None))
                result.bytes_read += len(index_raw)
                continue
            if member.path.endswith(".xml"):
                result.xml_files += 1
                with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
                    try:
                        cut = store_xml_member(session, stream, spool, text_cfg, member.name)
                    except XmlSyntax as exc:
                        raise XmlError(path, str(exc), member.name) from None
                    content = cut.content
                    entry["content"] = cut.kind
                    where = f"{archive}: {member.name}"
                    check_stored_length(session.get, content, cut.kind, member.size, where)
                    remember.extend(cut.remember)
                    if cut.raw_reason is not None:
                        result.raw_xml.append({"member": member.name, "reason": cut.raw_reason})
                    result.elements += cut.elements
                    result.records += cut.records
                    result.xml_reused += cut.reused
                    result.xml_resumed_bytes += cut.resumed_at
                    result.xml_grafted_bytes += cut.grafted
                    if member.path == "moodle_backup.xml":
                        try:
                            info = read_backup_info(spool)
                        except BackupInfoError as exc:
                            raise ArchiveError(path, str(exc), member.name) from None
                        if course is None or when is None:
                            # what was committed since the session opened (its
                            # lock keeps it): the nights before this one may
                            # have been ingested alongside it
                            repo.sync_catalog()
                            key = course or _course_of(info)
                            at = parse_time(when) if when else _epoch_of(info)
                            session.use_dictionary(_next_dictionary(repo, key, at))
            else:
                cfg = chunker_cfg if member.path.startswith("files/") else text_cfg
                claimed = claimed_contenthash(member.path)
                hashed = Sha1Reader(stream) if claimed else None
                content, _ = store_content(session, hashed or stream, cfg)
                entry["content"] = "blob"
                if hashed is not None and hashed.hexdigest() != claimed:
                    result.misnamed_files.append(
                        {"member": member.name, "sha1": hashed.hexdigest()}
                    )
                    result.files_misnamed += 1
            if content is None:
                entry["content"] = "empty"
        result.bytes_read += member.size
        entries.append((member, entry, content))
        if progress is not None:  # each member: one can take seconds (a 20 MB forum.xml)
            progress(result.bytes_read, 0)
        session.refresh_lock()

    if info is None:
        raise ArchiveError(path, "no moodle_backup.xml: not a Moodle backup")
    try:
        course_key = validate_course_key(course) if course else info.course_key
        epoch = parse_time(when) if when else float(info.backup_date)
    except BackupInfoError as exc:
        raise ArchiveError(path, f"{exc} (use --course/--time)", "moodle_backup.xml") from None

    # .ARCHIVE_INDEX: regenerate it from the entries when that gives the same bytes
    if index_raw is not None:
        regen = render_archive_index(
            (m.name, m.is_dir, m.size, m.mtime)
            for i, (m, _e, _c) in enumerate(entries)
            if i != index_pos
        )
        m, e, _c = entries[index_pos]
        if regen == index_raw:
            e["content"] = "archive-index"
        else:
            e["content"] = "blob"
            entries[index_pos] = (m, e, session.put(ObjectType.BLOB, index_raw))

    member_list = ListBuilder(session)
    for _m, e, cid in entries:
        member_list.append(session.put_tree([cid] if cid is not None else [], encode_member(e)))
    mtimes = session.put(ObjectType.BLOB, encode_mtimes([m.mtime for m, _e, _c in entries]))
    root = session.put_tree(
        [member_list.finish(), mtimes],
        encode_archive(
            {
                "format": layout.format,
                "members": len(entries),
                "gzip_os": layout.gzip_os,
                "tar_trailer": layout.tar_trailer,
            }
        ),
    )
    f = info.fields
    source = {
        "file": archive,
        "format": layout.format,
        "backup_name": f.get("name", ""),
        "moodle_release": f.get("moodle_release", ""),
        "moodle_version": f.get("moodle_version", ""),
        "backup_release": f.get("backup_release", ""),
        "backup_id": info.backup_id or "",
        "original_course_id": f.get("original_course_id", ""),
        "original_course_shortname": f.get("original_course_shortname", ""),
        "original_site_identifier_hash": f.get("original_site_identifier_hash", ""),
        "original_wwwroot": f.get("original_wwwroot", ""),
    }
    # a course's first snapshot leaves its upper trees as the next night's
    # dictionary: what that night rewrites (docs/format.md, "Dictionaries").
    # Whether it is the first is known for sure only at commit; a dictionary
    # of the wrong kind costs only compression.
    first = not parent_of(repo.snapshots(course_key), epoch)
    next_dictionary = session.make_dictionary(walk=root if first else None)

    def build(parents: list[str]) -> dict[str, Any]:
        """The record, once the store has chosen its parent (at commit, under
        the course's head update: another night may commit meanwhile)."""
        stats = session.stats  # after commit dropped what others stored meanwhile
        record = {
            "version": 1,
            "course": course_key,
            "time": format_time(epoch),
            "epoch": epoch,
            "root": root.hex(),
            "parents": parents,
            "source": source,
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

    result.snapshot = session.commit(SnapshotDraft(course_key, epoch, build)) or ""
    if remember and result.snapshot:  # only now are the trees durable (and indexed)
        repo.catalog.add_derived(result.snapshot, remember)
    stats = session.stats
    result.course = course_key
    result.time = format_time(epoch)
    result.new_objects = stats.new_objects
    result.new_bytes = stats.new_bytes
    result.stored_bytes = stats.stored_bytes
    if progress is not None:
        progress(result.bytes_read, 0)
    return result


def _next_dictionary(repo: Repository, course: str | None, epoch: float | None) -> ObjectId | None:
    """The dictionary the snapshot this one will most likely follow left for
    the next night: the course's newest at or before ``epoch`` (its parent,
    unless another night commits meanwhile)."""
    rows = repo.snapshots(course) if course else []
    if epoch is not None:
        rows = [r for r in rows if r.epoch <= epoch]
    return snapshot_dictionary(rows[-1].record) if rows else None


def _epoch_of(info: BackupInfo) -> float | None:
    """The backup's time (None if it gives none: reported later, as the course)."""
    try:
        return float(info.backup_date)
    except (BackupInfoError, TypeError, ValueError):
        return None


def _course_of(info: BackupInfo) -> str | None:
    """The course key moodle_backup.xml gives (None if it gives none: that is
    reported once the archive is read)."""
    try:
        return info.course_key
    except BackupInfoError:
        return None


def _canonical_header(m: MemberInfo) -> bytes | None:
    try:
        return moodle_header(m.name, m.is_dir, m.size, m.mtime)
    except TarHeaderError:
        return None
