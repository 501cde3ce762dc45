"""files.xml and the files/ members: ``backup_final_files_structure_step`` with
its ``file_nested_element`` and ``backup_file_manager::copy_file_moodle2backup``
(backup/moodle2/backup_stepslib.php, backup/util/helper/backup_file_manager.class.php).

Every final file record (directories included) goes to files.xml, in
annotation order; each distinct content of a real file (not a directory,
not a reference to external content) is copied once, to
``files/<first two hex digits>/<contenthash>``.  A content missing from the
file store is reported as Moodle logs it -- ``Missing file in pool: ...``,
a warning -- and its record stays in files.xml.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from coursevault.definitions.final_annotations import final_ids, rows_by_ids
from coursevault.errors import SiteDataError
from coursevault.moodledb.filedir import is_content_hash
from coursevault.moodledb.site import Row
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import Nested, Rows
from coursevault.structure.engine import Instance
from coursevault.structure.plan import FileRef, Member

FILE_FIELDS = (
    "contenthash", "contextid", "component", "filearea", "itemid", "filepath", "filename",
    "userid", "filesize", "mimetype", "status", "timecreated", "timemodified", "source",
    "author", "license", "sortorder", "repositorytype", "repositoryid", "reference",
)
_MEMO = "final_files"


def file_rows(ctx: TaskContext) -> list[Row]:
    """The final file records (after the final task's own migration), read once."""
    memo = ctx.run.memo
    if _MEMO not in memo:
        memo[_MEMO] = rows_by_ids(
            ctx, "SELECT f.*, r.type AS repositorytype, fr.repositoryid, fr.reference "
            "FROM {files} f LEFT JOIN {files_reference} fr ON fr.id = f.referencefileid "
            "LEFT JOIN {repository_instances} ri ON ri.id = fr.repositoryid "
            "LEFT JOIN {repository} r ON r.id = ri.typeid WHERE f.id IN",
            final_ids(ctx, "file", migrated=True))
    rows: list[Row] = memo[_MEMO]
    return rows


def files_structure(ctx: TaskContext) -> Nested:
    def rows(c: TaskContext, _p: Instance | None) -> list[Row]:
        return file_rows(c)

    return Nested("files", children=[
        Nested("file", attrs=("id",), fields=FILE_FIELDS, source=Rows(rows))])


def references_external(ctx: TaskContext) -> bool:
    """``backup_controller_dbops::backup_includes_file_references``: a final
    file is a reference to content outside the site."""
    return any(r.get("repositoryid") is not None for r in file_rows(ctx))


def file_members(ctx: TaskContext) -> Iterator[Member]:
    """The contents ``copy_file_moodle2backup`` copies, once per content."""
    if not ctx.run.setting("files"):
        return
    seen: set[str] = set()
    root = os.path.join(ctx.run.dataroot or "", "filedir")
    for row in file_rows(ctx):
        if row["filename"] == "." or row.get("referencefileid") is not None:
            continue
        sha = str(row["contenthash"])
        if sha in seen:
            continue
        seen.add(sha)
        if not is_content_hash(sha):  # "/etc/shadow": os.path.join reads it, not filedir's
            raise SiteDataError(f"file store: files row {row.get('id')}: its contenthash "
                                f"{sha[:80]!r} is not a SHA-1 (40 hex digits)")
        path = os.path.join(root, sha[0:2], sha[2:4], sha)
        try:
            found = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            ctx.run.warnings.append(
                f"Missing file in pool: {row['filepath']}{row['filename']} (context "
                f"{row['contextid']}, component {row['component']}, filearea "
                f"{row['filearea']}, itemid {row['itemid']}) [{sha}]")
            continue
        except OSError as exc:  # not missing: unreadable (permissions, EIO), so said
            raise SiteDataError(f"file store: {path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(found.st_mode):  # a folder, a FIFO (its read waits forever)
            raise SiteDataError(f"file store: {path}: not a regular file")
        yield f"files/{sha[0:2]}/{sha}", FileRef(path=path, contenthash=sha, size=found.st_size)
