"""Backing the whole reference site up and tallying the comparison, shared by
the reference-site test and the terminal summary that prints its table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from coursevault import api
from coursevault.store.backend import LocalBackend
from coursevault.store.repository import Repository
from coursevault.structure import registry

from .mbzcompare import Status, compare_archives, plugin_of
from .refsite import Course, RefSite, RefSiteDatabase

# Members every course has that are "core" but written from what the
# activities hold: identical only once every activity of the course is defined.
TALLY: dict[str, dict[str, list[int]]] = {}  # server -> plugin -> [identical, total]


def shipped(plugin: str) -> bool:
    """Plugins whose members must all be identical: the core parts, and every
    activity and block with a definition."""
    if plugin.startswith("mod_"):
        return plugin[4:] in registry.activities()
    if plugin.startswith("block_"):
        return plugin[6:] in registry.blocks()
    return True


@dataclass
class SiteBackup:
    """Our export of each course (by PostgreSQL id) and what the run warned."""

    exports: dict[int, Path] = field(default_factory=dict)
    warnings: dict[int, list[str]] = field(default_factory=dict)


def back_up_site(site: RefSite, db: RefSiteDatabase, root: Path) -> SiteBackup:
    """``backup --db`` of every course, each exported to ``cNNN.mbz``."""
    Repository.init(LocalBackend(root / "repo"))
    repo = Repository.open(LocalBackend(root / "repo"), cache_dir=root / "cache")
    by_id = {c.id_on(db.server): c for c in site.courses}
    request = api.BackupRequest(db_url=db.url, dataroot=str(site.dataroot), courses=sorted(by_id))
    done = SiteBackup()
    try:
        for outcome in api.backup(repo, request):
            course = by_id[outcome.courseid]
            assert outcome.outcome == "stored", outcome.error
            assert outcome.result is not None
            path = root / f"c{course.pg_id:03d}.mbz"
            api.export(repo, outcome.result.snapshot, str(path))
            done.exports[course.pg_id] = path
            done.warnings[course.pg_id] = outcome.warnings
    finally:
        repo.close()
    return done


def compare_course(
    server: str, course: Course, ours: Path, key: bytes, our_key: bytes | None
) -> tuple[list[str], list[str]]:
    """(problems in shipped plugins, problems elsewhere), tallied per plugin."""
    comparison = compare_archives(ours, course.backup, backup_key=key, our_key=our_key)
    tally = TALLY.setdefault(server, {})
    must, may = [], []
    for o in comparison.outcomes:
        plugin = plugin_of(o.path)
        counts = tally.setdefault(plugin, [0, 0])
        counts[0] += o.status is Status.IDENTICAL
        counts[1] += 1
        if o.status is not Status.IDENTICAL:
            line = f"{o.path}: {o.status}" + (
                f" ({o.first_difference})" if o.first_difference else ""
            )
            (must if shipped(plugin) else may).append(line)
    return must, may


def table(server: str) -> str:
    tally = TALLY.get(server, {})
    rows = [f"{'plugin':<22} identical  total  share  shipped"]
    for name in sorted(tally):
        same, total = tally[name]
        rows.append(
            f"{name:<22} {same:>9}  {total:>5}  {100 * same // total:>4}%  "
            f"{'yes' if shipped(name) else 'no'}"
        )
    return "\n".join(rows)
