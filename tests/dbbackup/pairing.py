"""Which of our members is which of Moodle's, when the ids in folder names
differ (a backup of the MariaDB site, made by Moodle restoring the
reference backups, against those backups).

Folders are paired by rank, never by id:

- activity folders (``activities/<module>_<cmid>``) by their position in
  moodle_backup.xml's ``<contents><activities>``: Moodle lists them sections
  by number, activities by sequence, the same order on both sites since
  the restore recreated the sections and their sequences in that order;
- section folders (``sections/section_<id>``) by their position in
  ``<contents><sections>`` (by section number);
- block folders (``.../blocks/<block>_<id>``) by rank of id among the blocks
  of that name in the same (paired) parent: the restore creates them in
  the order the backup lists them;
- files/ members are named by their content hash: identical content, same
  name; no pairing needed.

The k-th ``forum`` folder of ours pairs with the k-th of theirs, so a module
missing on one side shifts nothing for the other modules.  While our writer
has no moodle_backup.xml yet, its folders are ranked by id: the restore
created them in the manifest's order, so on the restored site id order is
that order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")

MANIFEST = "moodle_backup.xml"
_FOLDER = re.compile(r"^(activities|sections)/([a-z0-9]+)_(\d+)(?=/|$)")
_BLOCK = re.compile(r"^(.*/blocks)/([a-z0-9_]+)_(\d+)(?=/|$)")
_DIRECTORY = re.compile(rb"<directory>((?:activities|sections)/[a-z0-9]+_\d+)</directory>")


def _kind(folder: str) -> str:
    """``activities/forum`` for ``activities/forum_200``: what pairs by rank."""
    return folder.rsplit("_", 1)[0]


def _folder_id(folder: str) -> int:
    return int(folder.rsplit("_", 1)[1])


def _folders(paths: list[str], pattern: re.Pattern[str]) -> list[str]:
    """The folders ``pattern`` finds in ``paths``, each once, by id."""
    found = {m.group(0) for p in paths if (m := pattern.match(p))}
    return sorted(found, key=lambda f: (_kind(f), _folder_id(f)))


def _manifest_order(manifest: bytes | None, folders: list[str]) -> list[str]:
    """``folders`` in moodle_backup.xml's order, those it does not list last
    (by id).  Without a manifest: by id (see the module docstring)."""
    if manifest is None:
        return folders
    listed = [m.decode() for m in _DIRECTORY.findall(manifest)]
    rank = {f: i for i, f in enumerate(listed)}
    return sorted(folders, key=lambda f: (rank.get(f, len(rank)), _folder_id(f)))


def _pair_by_rank(ours: list[str], theirs: list[str]) -> dict[str, str]:
    """ours -> theirs: the k-th of each kind with the k-th of that kind."""
    by_kind: dict[str, list[str]] = {}
    for f in theirs:
        by_kind.setdefault(_kind(f), []).append(f)
    taken: dict[str, int] = {}
    pairs = {}
    for f in ours:
        k = _kind(f)
        i = taken.get(k, 0)
        taken[k] = i + 1
        if i < len(by_kind.get(k, [])):
            pairs[f] = by_kind[k][i]
    return pairs


def rename(path: str, renames: Mapping[str, str]) -> str:
    """``path`` with its folder (and its block folder) renamed."""
    for pattern in (_FOLDER, _BLOCK):
        m = pattern.match(path)
        if m and m.group(0) in renames:
            path = renames[m.group(0)] + path[m.end() :]
    return path


def _data(members: Mapping[str, T], path: str) -> bytes | None:
    member = members.get(path)
    data = getattr(member, "data", member)
    return data if isinstance(data, bytes) else None


def folder_renames(ours: Mapping[str, T], theirs: Mapping[str, T]) -> dict[str, str]:
    """Our folder -> Moodle's folder, for activities and sections, then for
    blocks (named inside their renamed parents: ``_rename`` renames the
    parent first)."""
    ordered = [
        _manifest_order(_data(side, MANIFEST), _folders(list(side), _FOLDER))
        for side in (ours, theirs)
    ]
    renames = _pair_by_rank(*ordered)
    ours_renamed = [rename(p, renames) for p in ours]
    blocks = [_folders(paths, _BLOCK) for paths in (ours_renamed, list(theirs))]
    renames.update(_pair_by_rank(*blocks))  # keyed by the renamed parent's path
    return renames


def pair_members(ours: Mapping[str, T], theirs: Mapping[str, T]) -> dict[str, T]:
    """Our members under the names of their partners in ``theirs`` (a
    folder without a partner keeps its own name, and so shows as extra)."""
    renames = folder_renames(ours, theirs)
    return {rename(p, renames): m for p, m in ours.items()}
