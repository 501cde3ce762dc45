"""Checking the journal (journal.py) and the catalog's snapshot rows against
the files: part of ``check``.

A catalog learns of index files and snapshots only from the journal, so a
file it does not name is one no catalog sees, and a catalog row for a file
that is gone is a cache out of step -- neither is found by any command but
this one any more (they no longer list the repository).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from coursevault.errors import CoursevaultError
from coursevault.store.catalog_sync import index_names, iter_snapshot_names
from coursevault.store.check import CATALOG, REPAIR_CATALOG, UNREFERENCED, CheckReport
from coursevault.store.ids import ObjectId
from coursevault.store.journal import INDEX, REPAIR, SNAPSHOT, JournalDamagedError, replay_each
from coursevault.store.repository import Repository
from coursevault.store.scratch import Scratch
from coursevault.store.series import committed_last
from coursevault.store.snapshots import row_digest

JOURNAL = "journal"  # a problem kind: the journal is damaged or out of step
EXAMPLES = 5  # files named per kind of problem; the rest are counted
# how far a catalog row's epoch may be from its record's (a double either side)
EPOCH_ROUNDING = 1e-3
# a writer journals its file right after writing it: a second look covers one
# that was between the two when the first listing was made
SECOND_LOOK_SECONDS = 1.0


def check_journal(
    repo: Repository,
    report: CheckReport,
    scratch: Scratch,
    needed_in: Callable[[str], set[ObjectId]] = lambda _name: set(),
) -> set[ObjectId]:
    """The journal names every index file and snapshot there is, and none
    that is not; the catalog's snapshot rows are those files.  Listed
    first, replayed second: the snapshots as listed for the walk (table
    ``listed`` of ``scratch``, if there), the index files now.  Every set of
    names is a table of ``scratch`` (on disk): a site's snapshots are
    millions of names.  ``needed_in``: the objects an index file names that
    snapshots need.  Returns those of the index files the journal lacks."""
    backend = repo.backend
    scratch.table("files", "what TEXT, name TEXT, PRIMARY KEY (what, name)")
    scratch.fill(
        "INSERT OR IGNORE INTO files VALUES (?, ?)",
        [(INDEX, n) for n in index_names(backend, lambda _msg: None)],
    )
    if scratch.has_table("listed"):
        scratch.execute("INSERT OR IGNORE INTO files SELECT ?, name FROM listed", (SNAPSHOT,))
    else:
        scratch.fill(
            "INSERT OR IGNORE INTO files VALUES (?, ?)",
            ((SNAPSHOT, n) for n in iter_snapshot_names(backend, repo.snapshot_fanout)),
        )
    repo.sync_catalog()  # what was journaled by the listing is in the catalog
    try:
        for attempt in (1, 2):
            if not _replay(repo, scratch):
                report.warn(
                    "no journal (a repository from before it): every command lists index/ "
                    "and snapshots/; `coursevault repair journal` starts one",
                    JOURNAL,
                )
                _check_catalog_snapshots(repo, scratch, "files", report)
                return set()  # catalogs list the repository
            # files the journal does not name, live or removed
            scratch.table("stray", "what TEXT, name TEXT, PRIMARY KEY (what, name)")
            scratch.execute(
                "INSERT INTO stray SELECT what, name FROM files "
                "EXCEPT SELECT what, name FROM journaled"
            )
            if not scratch.count("SELECT COUNT(*) FROM stray") or attempt == 2:
                break
            time.sleep(SECOND_LOOK_SECONDS)
    except JournalDamagedError as exc:
        report.error(f"journal: {exc} ({REPAIR})", JOURNAL)
        return set()  # catalogs list the repository meanwhile
    # few: a stray snapshot is left by a killed writer, by a journal entry
    # two writers wrote at once where the service has no conditional writes,
    # or put in by hand
    stray = list(scratch.column("SELECT name FROM stray WHERE what = ? ORDER BY name", (SNAPSHOT,)))
    pending = committed_last(repo, set(stray)) if stray else set()
    # no catalog sees an unjournaled snapshot: that is the journal's fault --
    # except one a head holds as its last commit, which a catalog may see
    # or not (a server catalog its writer shares sees it already; the others
    # when its course's next writer journals it)
    scratch.table("seen", "name TEXT PRIMARY KEY")
    scratch.execute(
        "INSERT INTO seen SELECT name FROM files WHERE what = ? "
        "EXCEPT SELECT name FROM stray WHERE what = ?",
        (SNAPSHOT, SNAPSHOT),
    )
    scratch.table("either", "name TEXT PRIMARY KEY")
    scratch.fill("INSERT INTO either VALUES (?)", ((n,) for n in sorted(pending)))
    _check_catalog_snapshots(repo, scratch, "seen", report, either="either")
    # a writer killed between its index file and its entry: nothing can use
    # the file (its snapshot was never committed, no catalog dedups against
    # it) -- unless its objects are needed already (`repair index`, `sync
    # --refill` re-index what snapshots hold): no catalog finds them
    unjournaled: set[ObjectId] = set()
    for name in scratch.column("SELECT name FROM stray WHERE what = ? ORDER BY name", (INDEX,)):
        needed = needed_in(name)
        if needed:
            unjournaled |= needed
            report.error(
                f"journal: index file {name} is not journaled, and snapshots need {len(needed)} "
                "objects it names: no catalog sees them (left by an interrupted repair or sync; "
                f"running it again, or {REPAIR})",
                JOURNAL,
            )
            continue
        report.warn(
            f"index file {name} is not journaled (left by an interrupted writer: "
            "nothing can use it; prune removes it)",
            UNREFERENCED,
        )
    for name in sorted(pending):
        report.warn(
            f"snapshot {name} is not journaled yet (its writer was killed after committing "
            "it: its course's next backup, forget or prune journals it, `coursevault repair "
            "journal` at once; until then no listing shows it)",
            JOURNAL,
        )
    _errors(
        report,
        (
            f"snapshot {n} is not journaled: catalogs do not see it"
            for n in stray
            if n not in pending
        ),
    )
    gone = scratch.rows(
        "SELECT what, name FROM journaled WHERE live = 1 "
        "EXCEPT SELECT what, name FROM files ORDER BY what, name"
    )
    kinds = {INDEX: "index file", SNAPSHOT: "snapshot"}
    # a file written and journaled after the listing is in the journal but
    # not in the listing: a writer committing while check runs.  Such names
    # are few; each is looked up again.
    keys = {INDEX: lambda n: f"index/{n}", SNAPSHOT: repo.record_key}
    _errors(
        report,
        (
            f"the journal names {kinds[w]} {n}, which is not there"
            for w, n in gone
            if not repo.backend.exists(keys[w](n))
        ),
    )
    return unjournaled


def _replay(repo: Repository, scratch: Scratch) -> bool:
    """Replay the journal into table ``journaled`` (what, name, live: 1 if
    named as added last, 0 if as removed: the file may linger until its
    deleter ends); False without a journal."""
    scratch.table("journaled", "what TEXT, name TEXT, live INTEGER, PRIMARY KEY (what, name)")
    pending: list[tuple[str, str, int]] = []

    def flush() -> None:
        scratch.fill("INSERT OR REPLACE INTO journaled VALUES (?, ?, ?)", pending)
        pending.clear()

    def restart() -> None:
        pending.clear()
        scratch.execute("DELETE FROM journaled")

    def apply(sign: str, what: str, name: str) -> None:
        pending.append((what, name, 1 if sign == "+" else 0))
        if len(pending) >= 4096:
            flush()

    found = replay_each(repo.backend, restart, apply)
    flush()
    return found is not None


def _errors(report: CheckReport, messages: Iterator[str]) -> None:
    """The first EXAMPLES messages, then how many more there were."""
    more = 0
    for i, message in enumerate(messages):
        if i < EXAMPLES:
            report.error(f"journal: {message} ({REPAIR})", JOURNAL)
        else:
            more += 1
    if more:
        report.error(f"journal: {more} more like these ({REPAIR})", JOURNAL)


def _check_catalog_snapshots(
    repo: Repository, scratch: Scratch, listed: str, report: CheckReport, either: str = ""
) -> None:
    """The catalog lists the readable snapshot files (table ``listed`` of
    ``scratch``; ``files`` holds kinds too), and only them (a file journaled
    as removed but still there is listed until its deleter ends); it may
    list those of table ``either`` or not."""
    catalog = repo.catalog
    where = " WHERE what = 's'" if listed == "files" else ""
    try:
        scratch.table("catalogued", "name TEXT PRIMARY KEY, digest BLOB, epoch REAL")
        scratch.fill(
            "INSERT OR REPLACE INTO catalogued VALUES (?, ?, ?)",
            (
                (snap_id, row_digest(series, time, root, record), epoch)
                for snap_id, series, time, epoch, root, record in catalog.iter_snapshot_columns()
            ),
        )
    except (CoursevaultError, TypeError, ValueError) as exc:
        report.error(f"catalog {catalog.shown}: {exc}", CATALOG)
        return
    wrong = 0
    examples: list[str] = []
    # rows whose columns are not their file's: a catalog edited behind
    # coursevault's back would resolve selectors and walks from them
    if scratch.has_table("records"):
        for name in scratch.column(
            "SELECT c.name FROM catalogued c JOIN records r USING (name) "
            "WHERE c.digest != r.digest OR abs(c.epoch - r.epoch) > ? "
            "ORDER BY c.name",
            (EPOCH_ROUNDING,),
        ):
            wrong += 1
            if len(examples) < EXAMPLES:
                examples.append(name)
    allowed = f" EXCEPT SELECT name FROM {either}" if either else ""
    rows = scratch.column(
        f"SELECT name FROM catalogued EXCEPT SELECT name FROM {listed}{where}{allowed} "
        "ORDER BY name"
    )
    for name in rows:  # rows the catalog should not have
        if repo.backend.exists(repo.record_key(name)):
            continue  # committed after the listing, by a writer running meanwhile
        wrong += 1
        if len(examples) < EXAMPLES:
            examples.append(name)
    missing = scratch.column(
        f"SELECT name FROM {listed}{where} EXCEPT SELECT name FROM catalogued ORDER BY name"
    )
    for name in missing:  # files the catalog lacks
        try:
            repo.read_snapshot(name)
        except CoursevaultError:
            continue  # unreadable: reported by the snapshot walk, listed by no catalog
        wrong += 1
        if len(examples) < EXAMPLES:
            examples.append(name)
    if wrong:
        report.error(
            f"catalog {catalog.shown}: {wrong} snapshot rows differ from the snapshot files "
            f"(e.g. {', '.join(examples)}); {REPAIR_CATALOG}",
            CATALOG,
        )
