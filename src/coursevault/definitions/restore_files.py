"""files.xml into ``files`` rows, and files/ into the file store
(``restore_dbops::send_files_to_pool``).

A file is restored when its context and its area are: the context is one
the restore created or matched (the course's, an activity's, a created
user's), and its area's item ids name rows of the restore
(``RestoreContext.file_areas``, gathered from the definitions' file
annotations as their elements were written, plus the course's own areas
below).  A file whose owner is not in the backup is owned by the
restoring user (the site's first admin), as Moodle's restore does.  Files of matched users (their profile pictures) are theirs
already and left alone, as Moodle does.  Each row gets Moodle's
``pathnamehash``; its content goes to the file store through the staging
of ``moodledb/filedir.py`` unless the store has it.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, Protocol

from coursevault.definitions.restore_course import finals
from coursevault.errors import BadInputError
from coursevault.moodledb.filedir import Staging, is_content_hash
from coursevault.structure.restore_engine import RestoreContext

# areas of the course task itself (course.xml, section.xml)
COURSE_AREAS: dict[tuple[str, str], str | None] = {
    ("course", "summary"): None, ("course", "overviewfiles"): None,
    ("course", "section"): "course_sections", ("user", "profile"): None,
    ("user", "icon"): None, ("grade", "feedback"): "grade_grades",
}



class BackupMembers(Protocol):
    """The members of the backup being restored."""

    def xml(self, path: str) -> bytes | None:
        """A member's bytes, or None when the backup lacks it."""

    def stream(self, path: str) -> Iterator[bytes] | None:
        """A member's bytes in pieces as they are read, or None."""

    def exists(self, path: str) -> bool: ...

    def folders(self, path: str) -> list[str]:
        """Names of the folders right under ``path``."""

    def copy(self, path: str, out: BinaryIO) -> None:
        """Write a (file content) member's bytes to ``out``."""


def restore_files(rc: RestoreContext, data: bytes, contexts: dict[str, int],
                  staging: Staging | None, members: BackupMembers) -> dict[str, int]:
    """Insert the file rows; stage contents.  Returns counts by outcome."""
    counts = {"restored": 0, "skipped": 0, "contents": 0, "missing": 0}
    areas = {**COURSE_AREAS, **rc.file_areas}
    restorer = restoring_user(rc)
    placed: list[tuple[dict[str, str | None], int, Any, str]] = []
    for el in ET.fromstring(data).iterfind("file"):
        v = finals(el)
        ctx = contexts.get(str(v.get("contextid")))
        key = (str(v.get("component")), str(v.get("filearea")))
        if ctx is None or key not in areas:
            counts["skipped"] += 1
            continue
        itemid: Any = v.get("itemid") or "0"
        target = areas[key]
        if target is not None:
            itemid = rc.ids.get(target, itemid)
            if itemid is None:
                counts["skipped"] += 1
                continue
        path = f"/{ctx}/{key[0]}/{key[1]}/{itemid}{v.get('filepath')}{v.get('filename')}"
        placed.append((v, ctx, itemid, hashlib.sha1(path.encode("utf-8")).hexdigest()))
    # the site's files at those paths, read at once (a query per file was
    # a fifth of gen_s's dry run); a path restored twice is kept once
    taken = {str(row["pathnamehash"]) for row in rc.writer.rows_in(
        "files", "pathnamehash", [p[3] for p in placed], columns=("pathnamehash",))}
    for v, ctx, itemid, pathnamehash in placed:
        if pathnamehash in taken:
            counts["skipped"] += 1
            continue
        sha1 = str(v.get("contenthash") or "")
        if not is_content_hash(sha1):  # named a path outside the file store
            raise BadInputError(f"files.xml: file {v.get('filename')!r}: its contenthash "
                                f"{sha1[:80]!r} is not a SHA-1 (40 hex digits)")
        if v.get("filename") != "." and staging is not None and not staging.has(sha1):
            member = f"files/{sha1[0:2]}/{sha1}"
            if not members.exists(member):
                counts["missing"] += 1
                rc.warnings.append(f"{member}: content missing from the backup and the "
                                   f"site: {v.get('filename')} left out")
                continue
            staging.stage(sha1, _copier(members, member), member)
            counts["contents"] += 1
        row: dict[str, Any] = {k: val for k, val in v.items()
                               if k not in ("repositorytype", "repositoryid", "reference")}
        row.update(contextid=ctx, itemid=itemid, pathnamehash=pathnamehash,
                   userid=_file_user(rc, v.get("userid"), restorer), referencefileid=None)
        rc.writer.insert("files", row)
        taken.add(pathnamehash)
        counts["restored"] += 1
    return counts


def _copier(members: BackupMembers, member: str) -> Callable[[BinaryIO], None]:
    return lambda f: members.copy(member, f)


def restoring_user(rc: RestoreContext) -> int | None:
    """Who Moodle would say restored the course: the first site admin."""
    row = rc.writer.one("config", {"name": "siteadmins"})
    first = str(row["value"]).split(",")[0] if row and row.get("value") else ""
    return int(first) if first.isdigit() else None


def _file_user(rc: RestoreContext, old: str | None, restorer: int | None) -> int | None:
    """The file's owner: the restored user, else the restoring user, as
    ``send_files_to_pool`` falls back.  No owner (NULL: a folder entry, a
    file the system made) stays NULL -- Moodle's restore gives those the
    restoring user too (the reference site's restored copies show it);
    coursevault keeps the data as the backup has it."""
    if old is None:
        return None
    return rc.ids.get("user", old) or restorer

