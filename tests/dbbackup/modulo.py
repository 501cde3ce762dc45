"""Comparing a backup of the MariaDB reference site with Moodle's backup of
the PostgreSQL one: equal modulo what Moodle's restore changes, strict
everywhere else.

The MariaDB site was made by Moodle *restoring* the reference backups
(../shared/moodle-site/README.md, last section), so byte identity is out of
reach there: every row got a new id, some timestamps are the restore's
clock, files.xml comes in another order.  Everything else -- text, NULLs,
escaping, number formats, the order of children -- is still a function of
the data, and a writer that gets it wrong on MariaDB (PyMySQL hands back
strings; decimals must keep their scale) must still fail.  So:

- members are paired, not matched by name (``pairing.py``): activity
  folders by their rank in moodle_backup.xml, sections by rank, blocks by
  rank, files/ by content hash (their name);
- each XML member is compared as bytes after masking exactly the values a
  restore renumbers, restamps or rewrites (``restoremask.py``), never
  re-serialised, so formatting still counts;
- what Moodle's restore reorders is compared as a multiset.

Each member gets one verdict: identical (bytes), equal modulo ids (equal
once masked), differs (with the first difference of the masked bytes),
missing, extra -- or missing-excused, for a file content the restored site
cannot have (``Exceptions.regenerated``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

from .mbzcompare import Comparison, MemberOutcome, Status, _Member, read_archive
from .mbzdiff import LineDifference, first_difference
from .mbzxml import path_at
from .pairing import folder_renames, rename
from .renumbering import Renumbering
from .restoremask import mask_with_ids, regenerated_files
from .restorerules import Exceptions

INDEX = ".ARCHIVE_INDEX"


def _compare_member(
    path: str, ours: _Member, theirs: _Member, exc: Exceptions, seen: Renumbering
) -> MemberOutcome:
    """identical / equal modulo ids / differs, for one pair of members."""
    if ours.is_dir or theirs.is_dir:
        if ours.is_dir == theirs.is_dir:
            return MemberOutcome(path, Status.IDENTICAL)
        return MemberOutcome(
            path, Status.DIFFERS, LineDifference(0, "a folder on one side only", "", "")
        )
    a, our_ids = mask_with_ids(path, ours.data, exc, theirs=False)
    b, their_ids = mask_with_ids(path, theirs.data, exc, theirs=True)
    # an identical member's ids count too: they are renumbered to themselves
    outcome = (
        MemberOutcome(path, Status.IDENTICAL) if ours.data == theirs.data else _verdict(path, a, b)
    )
    conflict = seen.conflict(path, our_ids, their_ids) if a == b else None
    if conflict is None:
        return outcome
    line = a.count(b"\n", 0, conflict.offset) + 1
    where = LineDifference(line, str(conflict), "", path_at(b, conflict.offset))
    return MemberOutcome(path, Status.DIFFERS, where, a, b)


def _verdict(path: str, ours: bytes, theirs: bytes) -> MemberOutcome:
    if ours == theirs:
        return MemberOutcome(path, Status.MODULO_IDS)
    return MemberOutcome(path, Status.DIFFERS, first_difference(ours, theirs, path), ours, theirs)


def excused_files(
    ours: Mapping[str, _Member], theirs: Mapping[str, _Member], exc: Exceptions
) -> frozenset[str]:
    """files/ members of Moodle's that the restored site cannot hold: the
    content of a file in an area the restore remade, where our files.xml
    names the same file with another content (and nothing with this one)."""
    if not exc.regenerated or "files.xml" not in theirs or "files.xml" not in ours:
        return frozenset()
    their_files = regenerated_files(theirs["files.xml"].data, exc)
    our_files = regenerated_files(ours["files.xml"].data, exc)
    ours_named = set(our_files.values())
    excused = {
        f"files/{h[:2]}/{h}"
        for key, h in their_files.items()
        if key in our_files and our_files[key] != h and h not in ours_named
    }
    return frozenset(excused | _emptied_folders(theirs, excused))


def _emptied_folders(theirs: Mapping[str, _Member], excused: set[str]) -> set[str]:
    """files/xx folders of Moodle's that hold only excused contents."""
    folders = {p.rsplit("/", 1)[0] for p in excused}
    return {f for f in folders if all(p in excused for p in theirs if p.startswith(f + "/"))}


_SIZE_OF_XML = re.compile(rb"^([^\t\n]+\.xml\tf\t)\d+", re.M)
_MTIME = re.compile(rb"^([^\t\n]+\tf\t\d+\t)\d+$", re.M)


def _index_lines(
    data: bytes, rename_path: Callable[[str], str], leave_out: frozenset[str]
) -> list[bytes]:
    """.ARCHIVE_INDEX's member lines, paths renamed, without ``leave_out``,
    sorted; an XML member's size and every mtime masked (the size of a
    member with ids or timestamps in it follows their digits)."""
    lines = []
    for line in data.split(b"\n")[1:]:
        if not line:
            continue
        path, _, rest = line.partition(b"\t")
        name = rename_path(path.decode())
        if name.rstrip("/") not in leave_out:
            lines.append(name.encode() + b"\t" + rest)
    masked = _SIZE_OF_XML.sub(rb"\1[size]", _MTIME.sub(rb"\1[mtime]", b"\n".join(sorted(lines))))
    return masked.split(b"\n")


def compare_index(
    ours: bytes, theirs: bytes, rename_path: Callable[[str], str], excused: frozenset[str]
) -> MemberOutcome:
    """.ARCHIVE_INDEX as the multiset of its lines: its order follows the
    folder names, which hold the ids; an excused member is left out of
    Moodle's, and of its count."""
    if ours == theirs:
        return MemberOutcome(INDEX, Status.IDENTICAL)
    a = _index_lines(ours, rename_path, frozenset())
    b = _index_lines(theirs, str, excused)
    head = b"Moodle archive file index. Count: "
    return _verdict(
        INDEX,
        b"\n".join([head + str(len(a)).encode(), *a]),
        b"\n".join([head + str(len(b)).encode(), *b]),
    )


def compare_members(
    ours: Mapping[str, _Member], theirs: Mapping[str, _Member], exc: Exceptions
) -> Comparison:
    """Every member of ``theirs`` (Moodle's) against its partner in ours,
    under theirs' name; ours without a partner come last as extras.  Member
    order is not compared: the tar order of Moodle's archive follows its
    folder names, which hold the ids."""
    renames = folder_renames(ours, theirs)
    renamed = {rename(p, renames): m for p, m in ours.items()}
    excused = excused_files(renamed, theirs, exc)
    seen = Renumbering()
    outcomes = []
    for path, member in theirs.items():
        if path == INDEX and INDEX in renamed:
            outcome = compare_index(
                renamed[INDEX].data, member.data, lambda p: rename(p, renames), excused
            )
        elif path in renamed:
            outcome = _compare_member(path, renamed[path], member, exc, seen)
        else:
            outcome = MemberOutcome(path, Status.EXCUSED if path in excused else Status.MISSING)
        outcomes.append(outcome)
    outcomes += [MemberOutcome(p, Status.EXTRA) for p in renamed if p not in theirs]
    return Comparison(outcomes, modulo=True)


def compare_archives_modulo(
    ours: str | Path, theirs: str | Path, exc: Exceptions | None = None
) -> Comparison:
    """``compare_members`` of two .mbz files."""
    return compare_members(read_archive(ours), read_archive(theirs), exc or Exceptions())
