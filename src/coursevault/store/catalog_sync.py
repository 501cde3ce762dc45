"""Keeping the catalog, a cache, in step with the repository's files.

The repository's index and snapshot files are the truth; the catalog is
rebuilt from them whenever it cannot be trusted.  Three things must never
turn a readable repository into an unusable one (issue 20, defect 6):

* a damaged index file is skipped, with a notice naming it and the command
  that repairs it (``repair index`` rebuilds index files from the packs),
  while everything the other index files name stays readable;
* a file in ``index/`` whose name is not an index id (a stray file left by a
  person or a tool) is ignored with a notice;
* a SQLite catalog whose file is damaged is deleted and built again from the
  repository, with a notice: it holds nothing the repository does not.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from coursevault.errors import CatalogDamagedError, CorruptionError, ObjectMissingError
from coursevault.store.backend import Backend
from coursevault.store.catalog import SQLITE_PREFIX, Catalog
from coursevault.store.journal import (
    CHECKPOINT,
    INDEX,
    REPAIR,
    SNAPSHOT,
    Entry,
    JournalDamagedError,
    Pointer,
    append,
    gen_key,
    read_entry_lines,
    read_pointer,
    write_checkpoint,
)
from coursevault.store.scratch import Scratch
from coursevault.store.snapshots import listed_snapshot, snapshot_row

if TYPE_CHECKING:
    from coursevault.store.repository import Repository

# index files are named by the BLAKE3 hash of their bytes, in hex
INDEX_NAME = re.compile(r"[0-9a-f]{64}")
# so are snapshot records
SNAPSHOT_NAME = INDEX_NAME
# Snapshot rows a catalog drops in one transaction when it catches up.
REMOVE_BATCH = 4096


def index_names(backend: Backend, notice: Callable[[str], None]) -> list[str]:
    """The names of the index files in ``index/``, sorted; any other file
    there is reported through ``notice`` and left alone."""
    names = []
    for key, _size in backend.list("index/"):
        name = key.split("/", 1)[1]
        if INDEX_NAME.fullmatch(name):
            names.append(name)
        else:
            notice(f"ignoring {key}: not an index file (a stray file; remove it by hand)")
    return sorted(names)


def iter_snapshot_names(
    backend: Backend, fanout: bool, on_stray: Callable[[str], None] = lambda _key: None
) -> Iterator[str]:
    """The names of the snapshot records of a repository of this layout
    (``snapshots.fans_out``), as listed, one at a time: a site's are
    millions.  ``on_stray(key)`` is told of the other files in ``snapshots/``."""
    for key, _size in backend.list("snapshots/"):
        name = listed_snapshot(key, fanout)
        if name is not None:
            yield name
        else:
            on_stray(key)


def sync_catalog(repo: Repository) -> list[str]:
    """Bring the catalog up to date with the repository's index and snapshot
    files; return the names of the damaged index files it skipped.

    With a journal (journal.py) it reads only the generations after the one
    the catalog last read: a warm sync costs two small reads whatever the
    repository's size.  Without one (a repository from before it), or when
    the journal is damaged (with a notice naming the repair), it lists
    ``index/`` and ``snapshots/`` as before."""
    catalog = repo.catalog
    _void_position_read_elsewhere(repo)
    try:
        pointer = read_pointer(repo.backend)
        if pointer is not None:
            return _sync_from_journal(repo, pointer)
    except JournalDamagedError as exc:
        repo.notice(f"{exc}: listing the repository instead ({REPAIR})")
    for key in (JOURNAL_META, PENDING_META):
        if catalog.get_meta(key):  # the position is void until the journal reads again
            catalog.set_meta(key, "")
    # The catalog's view first, the listing second (_reconcile): a file
    # another process commits in between then shows up as new, never as
    # "known but gone".
    damaged: list[str] = []
    _reconcile(
        repo,
        lambda: set(index_names(repo.backend, repo.notice)),
        lambda: iter_snapshot_names(repo.backend, repo.snapshot_fanout),
        damaged,
    )
    return damaged


# catalog meta: "<journal id> <generation>" last read, and what is waiting:
# names journaled as added whose file could not be loaded yet ("i:<hex>",
# "s:<hex>") and names journaled as removed whose file is still there
# ("-i:<hex>", "-s:<hex>": a deleter killed between its entry and the delete)
JOURNAL_META, PENDING_META = "journal", "journal_pending"
# where the repository was when the catalog last read its journal
LOCATION_META = "location"
Name = tuple[str, str]  # (INDEX or SNAPSHOT, hex name); "-" before the kind: removing


def _void_position_read_elsewhere(repo: Repository) -> None:
    """A catalog is the repository id's, and a copy of a repository folder
    (``cp -a``, rsync, a bucket copied) keeps the id: the copies share the
    machine's catalog, and their journals go on apart -- a prune of one
    makes a checkpoint the other never had, a backup into each an entry of
    the same generation.  A position read at another location says nothing
    of this one's journal: it is voided, and the catalog replays this
    location's from its checkpoint (what it already holds is not loaded
    again).  The same repository reached by another path costs that one
    replay."""
    where = repo.backend.location()
    catalog = repo.catalog
    if catalog.get_meta(LOCATION_META) == where:
        return
    for key in (JOURNAL_META, PENDING_META):
        if catalog.get_meta(key):
            catalog.set_meta(key, "")
    catalog.set_meta(LOCATION_META, where)


def journal_files(
    repo: Repository, *, added: Iterable[Name] = (), removed: Iterable[Name] = ()
) -> None:
    """Journal index files or snapshots just written (``added``: they must
    be durable already) or about to be deleted (``removed``: before they
    are).  A damaged journal is not the writer's to fail on: the file stays,
    a notice says so, and ``check`` reports it until ``repair journal``."""
    state = (repo.catalog.get_meta(JOURNAL_META) or "").split()
    known = (state[0], int(state[1])) if len(state) == 2 else None
    # The first free generation is searched for from the last one this
    # process wrote, if later than what its catalog read: forget --all
    # journals a course at a time, and the n-th entry probed n files
    # (1,600 courses took 13.7 s).
    tail = repo.journal_tail
    if known is not None and tail is not None and tail[0] == known[0] and tail[1] > known[1]:
        known = tail
    try:
        gen = append(repo.backend, known, added=added, removed=removed)
        if gen is not None and known is not None:
            repo.journal_tail = (known[0], gen)
    except JournalDamagedError as exc:
        repo.notice(f"{exc}: a change was not journaled ({REPAIR})")


def checkpoint_from_listing(repo: Repository, *, fresh: bool = False) -> Pointer:
    """Write a journal checkpoint of every index file and snapshot listed,
    starting the journal if there was none (exclusive lock only)."""
    index = index_names(repo.backend, repo.notice)
    with Scratch(repo.scratch_folder) as scratch:  # sorted on disk: a site's are millions
        scratch.names("snaps", iter_snapshot_names(repo.backend, repo.snapshot_fanout))
        snaps = scratch.column("SELECT name FROM snaps ORDER BY name")
        return write_checkpoint(repo.backend, index, snaps, fresh=fresh, presorted=True)


def _sync_from_journal(repo: Repository, pointer: Pointer) -> list[str]:
    catalog = repo.catalog
    state = (catalog.get_meta(JOURNAL_META) or "").split()
    pending_text = catalog.get_meta(PENDING_META) or ""
    items = (item.partition(":") for item in pending_text.split())
    waiting: set[Name] = {(what, name) for what, _colon, name in items}
    damaged: list[str] = []
    if len(state) == 2 and state[0] == pointer.journal and int(state[1]) >= pointer.gen:
        gen = int(state[1])
    else:  # a new catalog, or one behind the newest checkpoint: start from it
        found = read_entry_lines(repo.backend, pointer, pointer.gen)
        if found is None or found[0] != CHECKPOINT:
            raise JournalDamagedError(f"{gen_key(pointer.gen)}: the checkpoint is missing")
        waiting = _checkpoint(repo, found[1], damaged)
        gen = pointer.gen
    while (found := read_entry_lines(repo.backend, pointer, gen + 1)) is not None:
        kind, lines = found
        if kind == CHECKPOINT:
            waiting = _checkpoint(repo, lines, damaged)
        else:
            waiting = _apply(repo, _entry(lines), waiting, damaged)
        gen += 1
    if waiting:  # written late, damaged, or a deleter killed: try again
        waiting = _retry(repo, waiting, damaged)
    new_state = f"{pointer.journal} {gen}"
    new_pending = " ".join(f"{w}:{n}" for w, n in sorted(waiting))
    changed = {}
    if state != new_state.split():
        changed[JOURNAL_META] = new_state
    if new_pending != pending_text:
        changed[PENDING_META] = new_pending
    if changed:
        catalog.set_metas(changed)  # together: the position never passes what waits
    return damaged


def _entry(lines: Iterable[tuple[str, str, str]]) -> Entry:
    """An entry's lines (few) as an Entry."""
    entry = Entry("", 0)
    for sign, what, name in lines:
        (entry.added if sign == "+" else entry.removed)[what].append(name)
    return entry


def _checkpoint(
    repo: Repository, lines: Iterator[tuple[str, str, str]], damaged: list[str]
) -> set[Name]:
    """Make the catalog hold what a checkpoint names (streamed: it names
    every snapshot); return those it could not load."""
    index: set[str] = set()

    def snapshots() -> Iterator[str]:
        for _sign, what, name in lines:
            if what == INDEX:
                index.add(name)
            else:
                yield name

    return _reconcile(repo, lambda: index, snapshots, damaged)


def _apply(repo: Repository, entry: Entry, waiting: set[Name], damaged: list[str]) -> set[Name]:
    """Bring the catalog in step with one journal entry; return what is
    still waiting.  An entry removes (a file still there stays, waiting for
    its deleter), then adds (a file that cannot be loaded stays out,
    waiting).  (A checkpoint replaces what the catalog holds: _checkpoint.)"""
    waiting = set(waiting)
    for what, names in entry.removed.items():
        waiting -= {(what, n) for n in names}
        waiting |= {("-" + what, n) for n in names}
    for what, names in entry.added.items():
        waiting -= {("-" + what, n) for n in names}
        waiting |= {(what, n) for n in names}
    return _retry(repo, waiting, damaged)


def _retry(repo: Repository, waiting: set[Name], damaged: list[str]) -> set[Name]:
    """Load what is waiting to be added and drop what is waiting to be removed
    once its file is gone; return what still waits."""
    catalog = repo.catalog
    left: set[Name] = set()
    gone: set[str] = set()
    removed: list[str] = []  # in one transaction: a forget --all entry names thousands
    for what, name in sorted(waiting):
        if what == "-" + SNAPSHOT:
            if repo.backend.exists(repo.record_key(name)):
                left.add((what, name))
            else:
                removed.append(name)
        elif what == "-" + INDEX:
            if repo.backend.exists(f"index/{name}"):
                left.add((what, name))
            elif catalog.has_index_file(name):
                gone.add(name)
        elif what == INDEX:
            if not catalog.has_index_file(name) and not _load(repo, INDEX, name, damaged):
                left.add((what, name))
        elif not catalog.has_snapshot(name) and not _load(repo, SNAPSHOT, name, damaged):
            left.add((what, name))
    catalog.remove_snapshots(removed)
    if gone:  # the catalog cannot tell which objects a file gave it: reload the rest
        rest = catalog.index_files() - gone
        catalog.clear_objects()
        left |= {(INDEX, n) for n in sorted(rest) if not _load(repo, INDEX, n, damaged)}
    return left


def _reconcile(
    repo: Repository,
    index: Callable[[], set[str]],
    snaps: Callable[[], Iterable[str]],
    damaged: list[str],
) -> set[Name]:
    """Make the catalog hold exactly the index files ``index()`` and the
    snapshots ``snaps()`` (a listing, or a checkpoint), both called after
    the catalog's view is taken; return those it could not load.  The
    snapshot names, which are millions on a site, are compared in a scratch
    file (store/scratch.py), not as sets: every command crossing the
    checkpoint a prune writes did that."""
    catalog = repo.catalog
    with Scratch(repo.scratch_folder) as scratch:
        known = catalog.index_files()
        scratch.names("have", catalog.iter_snapshot_ids())
        scratch.names("want", snaps())
        wanted = index()  # after snaps(): a checkpoint's is read on the way
        if known - wanted:  # index files were removed (prune): start over
            catalog.clear_objects()
            known = set()
        pending = {(INDEX, n) for n in sorted(wanted - known) if not _load(repo, INDEX, n, damaged)}
        gone = scratch.column("SELECT name FROM have EXCEPT SELECT name FROM want")
        for batch in iter(lambda: list(itertools.islice(gone, REMOVE_BATCH)), []):
            catalog.remove_snapshots(batch)
        added = scratch.column("SELECT name FROM want EXCEPT SELECT name FROM have ORDER BY name")
        pending |= {(SNAPSHOT, s) for s in added if not _load(repo, SNAPSHOT, s, damaged)}
    return pending


def _load(repo: Repository, what: str, name: str, damaged: list[str]) -> bool:
    """Load one index file or snapshot record into the catalog, verified;
    whether it could be (a missing or damaged file is not, and stays out)."""
    if what == SNAPSHOT:
        try:
            repo.catalog.add_snapshot(snapshot_row(name, repo.read_snapshot(name)))
        except ObjectMissingError:
            return False  # forgotten meanwhile, or a writer killed: check says which
        except (CorruptionError, KeyError, TypeError, ValueError) as exc:
            # never listed as a usable snapshot, and said: a damaged newest
            # record left `export COURSE@latest` the night before, silently
            if name not in repo.damaged_records:
                repo.damaged_records.append(name)
            repo.notice(f"snapshot record {name[:12]} is damaged ({exc}): left out of every "
                        "listing (`coursevault repair refs` restores a course's last one from "
                        "its ref)")
            return False
        return True
    try:
        entries = repo.read_index(name)
    except FileNotFoundError:
        return False
    except CorruptionError as exc:
        repo.notice(f"{exc}: skipped (run `coursevault repair index`)")
        if name not in damaged:  # tried again at each entry while it waits
            damaged.append(name)
        # a walk dictionary read while its objects cannot all be found
        # would differ from its writer's: keep none on disk meanwhile
        repo.disable_disk_dictionaries()
        return False
    repo.catalog.add_index_file(name, entries)
    return True


def sqlite_path(url: str) -> Path | None:
    """The file of a plain SQLite catalog URL (None for a server catalog)."""
    if url.startswith(SQLITE_PREFIX) and "?" not in url:
        return Path(url[len(SQLITE_PREFIX) :])
    return None


def remove_sqlite(path: Path) -> None:
    """Delete a SQLite database with its journal files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def open_catalog(url: str, notice: Callable[[str], None]) -> Catalog:
    """Open the catalog at ``url``; a damaged SQLite file is started afresh
    (the caller syncs it from the repository).  A server catalog is never
    dropped here: it may be shared, and its damage is for its owner to see."""
    catalog: Catalog | None = None
    try:
        catalog = Catalog(url)
        catalog.get_meta("repository")  # reads a page: a damaged file says so here
        return catalog
    except CatalogDamagedError as exc:
        path = sqlite_path(url)
        if path is None:
            raise
        if catalog is not None:
            with contextlib.suppress(Exception):
                catalog.close()
        reset_damaged(path, exc, notice)
        return Catalog(url)


def reset_damaged(path: Path, exc: CatalogDamagedError, notice: Callable[[str], None]) -> None:
    """Delete a damaged SQLite catalog, saying so once."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    notice(f"the catalog {path} was damaged ({cause}): rebuilding it from the repository")
    remove_sqlite(path)
