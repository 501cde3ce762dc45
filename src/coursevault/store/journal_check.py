"""Checking the journal (journal.py) and the catalog's snapshot rows against
the files: part of ``check``.

A catalog learns of index files and snapshots only from the journal, so a
file it does not name is one no catalog sees, and a catalog row for a file
that is gone is a cache out of step -- neither is found by any command but
this one any more (they no longer list the repository).
"""

from __future__ import annotations

import time

from coursevault.errors import CoursevaultError
from coursevault.store.catalog_sync import index_names, snapshot_names
from coursevault.store.check import CATALOG, REPAIR_CATALOG, UNREFERENCED, CheckReport
from coursevault.store.journal import INDEX, REPAIR, SNAPSHOT, JournalDamagedError, replay
from coursevault.store.repository import Repository

JOURNAL = "journal"  # a problem kind: the journal is damaged or out of step
EXAMPLES = 5  # files named per kind of problem; the rest are counted
# a writer journals its file right after writing it: a second look covers one
# that was between the two when the first listing was made
SECOND_LOOK_SECONDS = 1.0


def check_journal(repo: Repository, report: CheckReport) -> None:
    """The journal names every index file and snapshot there is, and none
    that is not; the catalog's snapshot rows are those files.  Listed
    first, replayed second."""
    backend = repo.backend
    index = set(index_names(backend, lambda _msg: None))
    snaps = set(snapshot_names(backend))
    repo.sync_catalog()  # what was journaled by the listing is in the catalog
    try:
        for attempt in (1, 2):
            state = replay(backend)
            if state is None:
                report.warn(
                    "no journal (a repository from before it): every command lists index/ "
                    "and snapshots/; `coursevault repair journal` starts one",
                    JOURNAL,
                )
                _check_catalog_snapshots(repo, snaps, report)
                return
            stray_index = sorted(index - state.live[INDEX] - state.removed[INDEX])
            stray_snaps = sorted(snaps - state.live[SNAPSHOT] - state.removed[SNAPSHOT])
            gone = [f"index file {n}" for n in sorted(state.live[INDEX] - index)]
            gone += [f"snapshot {n}" for n in sorted(state.live[SNAPSHOT] - snaps)]
            if not (stray_index or stray_snaps) or attempt == 2:
                break
            time.sleep(SECOND_LOOK_SECONDS)
    except JournalDamagedError as exc:
        report.error(f"journal: {exc} ({REPAIR})", JOURNAL)
        return  # catalogs list the repository meanwhile
    # no catalog sees an unjournaled snapshot: that is the journal's fault
    _check_catalog_snapshots(repo, snaps - set(stray_snaps), report)
    # a writer killed between its index file and its entry: nothing can use
    # the file (its snapshot was never committed, no catalog dedups against it)
    for name in stray_index:
        report.warn(
            f"index file {name} is not journaled (left by an interrupted writer: "
            "nothing can use it; prune removes it)",
            UNREFERENCED,
        )
    _errors(report, [f"snapshot {n} is not journaled: catalogs do not see it" for n in stray_snaps])
    _errors(report, [f"the journal names {what}, which is not there" for what in gone])


def _errors(report: CheckReport, messages: list[str]) -> None:
    for message in messages[:EXAMPLES]:
        report.error(f"journal: {message} ({REPAIR})", JOURNAL)
    if len(messages) > EXAMPLES:
        report.error(f"journal: {len(messages) - EXAMPLES} more like these ({REPAIR})", JOURNAL)


def _check_catalog_snapshots(repo: Repository, listed: set[str], report: CheckReport) -> None:
    """The catalog lists the readable snapshot files, and only them (a file
    journaled as removed but still there is listed until its deleter ends)."""
    catalog = repo.catalog
    try:
        rows = catalog.snapshot_ids()
    except CoursevaultError as exc:
        report.error(f"catalog {catalog.url}: {exc}", CATALOG)
        return
    wrong = sorted(rows - listed)
    for name in sorted(listed - rows):
        try:
            repo.read_snapshot(name)
        except CoursevaultError:
            continue  # unreadable: reported by the snapshot walk, listed by no catalog
        wrong.append(name)
    if wrong:
        report.error(
            f"catalog {catalog.url}: {len(wrong)} snapshot rows differ from the snapshot files "
            f"(e.g. {', '.join(wrong[:EXAMPLES])}); {REPAIR_CATALOG}",
            CATALOG,
        )
