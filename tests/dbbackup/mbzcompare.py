"""Compare our .mbz with Moodle's, member by member, allowing only what differs
between two runs of Moodle's own backup of an unchanged course.

The oracle of ``coursevault backup --db``: the reference site's README
(../shared/moodle-site) measured that everything else in a backup is a
function of the database and file store, so two correct writers agree on it
byte for byte.  What may differ is masked (``mbzxml``); tar headers are not
compared at all (their mtimes are run-specific), contents are.  Member order
is compared too: Moodle writes members in a fixed order (``.ARCHIVE_INDEX``,
identical across runs, lists them in it).

    .venv/bin/python -m tests.dbbackup.mbzcompare OURS THEIRS [--member GLOB] [--diff]
"""

from __future__ import annotations

import argparse
import enum
import fnmatch
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coursevault.moodle2.archive import iter_members

from .mbzdiff import LineDifference, first_difference, short_diff
from .mbzxml import mask_member


class Status(enum.StrEnum):
    IDENTICAL = "identical"
    DIFFERS = "differs"
    MISSING = "missing-in-ours"
    EXTRA = "extra-in-ours"
    # only from modulo.py (a backup of the MariaDB site, restored by Moodle):
    MODULO_IDS = "equal-modulo-ids"  # equal once what a restore changes is masked
    EXCUSED = "missing-excused"  # missing as a named exception says it must be


# Verdicts that count as agreeing (equal modulo ids: only in a comparison
# with a restored site's backup, where nothing is byte-identical by design).
SAME = (Status.IDENTICAL, Status.MODULO_IDS)


@dataclass(frozen=True)
class MemberOutcome:
    """One member's verdict; for a differing one, both sides as compared
    (masked), to diff them."""

    path: str
    status: Status
    first_difference: LineDifference | None = None
    ours: bytes | None = field(default=None, repr=False)
    theirs: bytes | None = field(default=None, repr=False)

    def diff(self, lines: int = 20) -> list[str]:
        """The first ``lines`` lines of a unified diff (theirs -> ours)."""
        if self.ours is None or self.theirs is None:
            return []
        return short_diff(self.theirs, self.ours, self.path, lines)


def plugin_of(path: str) -> str:
    """Which plugin writes a member: ``mod_<mod>``, ``block_<block>``,
    ``core_section``, ``files`` (contents), or ``core`` for the rest -- so an
    engineer sees the share of their plugin that is already identical."""
    parts = path.split("/")
    if parts[0] == "activities" and len(parts) > 1:
        return "mod_" + parts[1].rsplit("_", 1)[0]
    if parts[:2] == ["course", "blocks"] and len(parts) > 2:
        return "block_" + parts[2].rsplit("_", 1)[0]
    if parts[0] == "sections" and len(parts) > 1:
        return "core_section"
    if parts[0] == "files" and len(parts) > 1:
        return "files"
    return "core"


@dataclass(frozen=True)
class Share:
    identical: int
    total: int


@dataclass
class Comparison:
    """Every member's outcome, theirs in archive order then our extras, and
    whether the members both have come in the same order (None if so)."""

    outcomes: list[MemberOutcome]
    order_difference: str | None = None
    modulo: bool = False  # from modulo.py: "identical" counts equal modulo ids too

    @property
    def identical(self) -> bool:
        ok = all(o.status is Status.IDENTICAL for o in self.outcomes)
        return ok and self.order_difference is None

    def outcome(self, path: str) -> MemberOutcome:
        return next(o for o in self.outcomes if o.path == path)

    @property
    def agrees(self) -> bool:
        """Every member identical, equal modulo ids or excused, in order."""
        ok = all(o.status in (*SAME, Status.EXCUSED) for o in self.outcomes)
        return ok and self.order_difference is None

    def problems(self) -> list[MemberOutcome]:
        return [o for o in self.outcomes if o.status not in SAME]

    def by_plugin(self) -> dict[str, Share]:
        """identical (or equal modulo ids)/total members per plugin (sorted
        by name)."""
        counts: dict[str, list[int]] = {}
        for o in self.outcomes:
            c = counts.setdefault(plugin_of(o.path), [0, 0])
            c[0] += o.status in SAME
            c[1] += 1
        return {k: Share(*counts[k]) for k in sorted(counts)}

    def table(self) -> str:
        shares = self.by_plugin()
        width = max([len("plugin"), *map(len, shares)])
        same = "identical or equal modulo ids" if self.modulo else "identical"
        rows = [f"{'plugin':<{width}}  {same}  total  share"]
        everything = Share(sum(s.identical for s in shares.values()), len(self.outcomes))
        for name, s in [*shares.items(), ("all", everything)]:
            pct = f"{100 * s.identical // s.total}%" if s.total else "-"
            rows.append(f"{name:<{width}}  {s.identical:>{len(same)}}  {s.total:>5}  {pct:>5}")
        if self.order_difference:
            rows.append(f"member order differs: {self.order_difference}")
        return "\n".join(rows)


@dataclass(frozen=True)
class _Member:
    is_dir: bool
    data: bytes


def read_archive(path: str | Path) -> dict[str, _Member]:
    """Every member by logical path, in archive order (tgz or zip, through
    the project's reader, which refuses unsafe or damaged archives with an
    ``ArchiveError`` naming the member)."""
    members: dict[str, _Member] = {}
    _layout, it = iter_members(str(path))
    for info, stream in it:
        if info.link is not None:
            target = members[info.link.removeprefix("./").rstrip("/")]
            members[info.path] = target
        else:
            members[info.path] = _Member(info.is_dir, b"" if info.is_dir else stream.read())
    return members


def _compare_member(
    path: str, ours: _Member, theirs: _Member, our_key: bytes | None, their_key: bytes | None
) -> MemberOutcome:
    if ours.is_dir != theirs.is_dir:
        kinds = ("a folder" if m.is_dir else "a file" for m in (ours, theirs))
        note = "ours is {}, theirs {}".format(*kinds)
        return MemberOutcome(path, Status.DIFFERS, LineDifference(0, note, "", ""))
    if ours.data == theirs.data:
        return MemberOutcome(path, Status.IDENTICAL)
    a, b = mask_member(path, ours.data, our_key), mask_member(path, theirs.data, their_key)
    if a == b:
        return MemberOutcome(path, Status.IDENTICAL)
    return MemberOutcome(path, Status.DIFFERS, first_difference(a, b, path), a, b)


def compare_archives(
    ours: str | Path,
    theirs: str | Path,
    *,
    backup_key: bytes | None = None,
    our_key: bytes | None = None,
    member_glob: str | None = None,
) -> Comparison:
    """Compare every member of ``ours`` with ``theirs`` (Moodle's).

    ``backup_key`` is the raw 32-byte key of the site ``theirs`` was made on
    (``refsite.backup_key``); ``our_key`` the one ours was encrypted with, if
    another (a backup from the MariaDB site).  Without keys, encrypted
    elements compare as differing unless byte-identical.  ``member_glob``
    limits the comparison to matching member paths.
    """
    a, b = read_archive(ours), read_archive(theirs)
    key_ours = our_key if our_key is not None else backup_key
    paths = [*b, *(p for p in a if p not in b)]
    if member_glob:
        paths = [p for p in paths if fnmatch.fnmatchcase(p, member_glob)]
    outcomes = []
    for path in paths:
        if path not in a:
            outcomes.append(MemberOutcome(path, Status.MISSING))
        elif path not in b:
            outcomes.append(MemberOutcome(path, Status.EXTRA))
        else:
            outcomes.append(_compare_member(path, a[path], b[path], key_ours, backup_key))
    return Comparison(outcomes, _order_difference(list(a), list(b)))


def _order_difference(ours: list[str], theirs: list[str]) -> str | None:
    """Where the members both archives hold first come in another order:
    Moodle writes them in a fixed order, which .ARCHIVE_INDEX records."""
    common = set(ours) & set(theirs)
    a = [p for p in ours if p in common]
    b = [p for p in theirs if p in common]
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            return f"shared member #{i + 1} is {x} in ours, {y} in theirs"
    return None


def _report(comparison: Comparison, with_diff: bool) -> str:
    lines = [comparison.table()]
    if comparison.problems():
        lines.append("")
    for o in comparison.problems():
        lines.append(f"{o.status:<15} {o.path}")
        d = o.first_difference
        if d is not None and not with_diff:
            lines.append(f"  line {d.line} in {d.path or '(no element)'}")
            lines.append(f"  ours:   {d.ours}")
            lines.append(f"  theirs: {d.theirs}")
        if with_diff:
            lines.extend("  " + line for line in o.diff())
    return "\n".join(lines)


def _key_from(args: argparse.Namespace) -> bytes | None:
    from .refsite import backup_key  # SQLAlchemy only when a database is asked

    url = args.key_db or os.environ.get("COURSEVAULT_REFSITE_POSTGRES")
    return backup_key(url) if url else None


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when the archives agree, 1 when they differ, 2 on bad usage."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.dbbackup.mbzcompare", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("ours", help="the .mbz coursevault wrote")
    parser.add_argument("theirs", help="Moodle's .mbz of the same course")
    parser.add_argument("--member", metavar="GLOB", help="only members whose path matches")
    parser.add_argument("--diff", action="store_true", help="a short unified diff per member")
    parser.add_argument(
        "--restored",
        action="store_true",
        help="ours is a backup of the MariaDB site (made by Moodle restoring theirs): "
        "compare equal modulo what the restore changes (modulo.py)",
    )
    parser.add_argument(
        "--key-db",
        metavar="URL",
        help="database to read Moodle's backup key from (default: $COURSEVAULT_REFSITE_POSTGRES)",
    )
    args = parser.parse_args(argv)
    for p in (args.ours, args.theirs):
        if not Path(p).is_file():
            parser.error(f"no such file: {p}")
    if args.restored:
        comparison = _restored_comparison(args.ours, args.theirs, args.member)
    else:
        comparison = compare_archives(
            args.ours, args.theirs, backup_key=_key_from(args), member_glob=args.member
        )
    if not comparison.outcomes:
        parser.error(f"no member matches {args.member!r}")
    print(_report(comparison, args.diff))
    return 0 if comparison.agrees else 1


def _restored_comparison(ours: str, theirs: str, member_glob: str | None) -> Comparison:
    """The MariaDB comparison, with the named exceptions of the reference
    course ``theirs`` is the backup of (cNNN-*.mbz: NNN its PostgreSQL id)."""
    from .modulo import compare_archives_modulo  # modulo imports this module
    from .sitecheck import exceptions_for_backup

    comparison = compare_archives_modulo(ours, theirs, exceptions_for_backup(Path(theirs)))
    if member_glob:
        comparison.outcomes = [
            o for o in comparison.outcomes if fnmatch.fnmatchcase(o.path, member_glob)
        ]
    return comparison


if __name__ == "__main__":
    # piped into head: stop quietly.  Only as a command: set by main(), a
    # test calling it left its pytest worker to die of the next write to a
    # closed socket (the S3 fault proxy's, answering a request that timed out)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
