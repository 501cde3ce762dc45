"""The checker: is every snapshot complete, and is every stored byte what it claims?

Errors mean data a snapshot needs is missing or corrupt.  Warnings mean space
is wasted but nothing is at risk (packs no index names, left by an interrupted
writer; temporary files); ``prune`` removes those.  Each problem names the
object, pack, index file or snapshot concerned.
"""

from __future__ import annotations

import contextlib
import json
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import blake3

from coursevault.errors import (
    BackendError,
    CatalogError,
    CorruptionError,
    CoursevaultError,
    ObjectMissingError,
    TruncatedError,
)
from coursevault.store import scratch as scratch_file
from coursevault.store.backend import Backend
from coursevault.store.catalog_sync import index_names
from coursevault.store.dictionaries import DICT_WALK, parse_dictionary
from coursevault.store.ids import TYPES, ObjectId, ObjectType, object_id
from coursevault.store.index import IndexFormatError, decode_index_table
from coursevault.store.objecttable import ObjectTable
from coursevault.store.pack import Location, PackFormatError, iter_blocks, pack_files, pack_key
from coursevault.store.reach import Reach, walk_order
from coursevault.store.refcheck import damaged_refs
from coursevault.store.repository import Repository
from coursevault.store.scratch import Scratch
from coursevault.store.snapshots import row_digest, snapshot_dictionary, snapshot_row

# What kind of damage a problem is, and so which repair applies (the guide's
# "When something is wrong" lists them): bytes that are there but wrong, files
# or objects that are not there, a catalog (a cache) out of step with the
# files, a storage failure; for warnings, space to reclaim or a stray file.
CORRUPT, MISSING, CATALOG, BACKEND = "corrupt", "missing", "catalog", "backend"
UNREFERENCED, STRAY, REF = "unreferenced", "stray", "ref"
SEEN = 1  # the mark on ObjectTable rows of what snapshots' walks reach
READ = 2  # and of objects read here and found to hash to their ids
# and of what dictionaries read, without what it names: apart from SEEN, or a
# snapshot's walk meeting a tree a dictionary kept (an upper tree of a
# forgotten night) stopped there, and never saw its children missing
DICT = 4
NEEDED = SEEN | DICT


def kind_of(exc: BaseException) -> str:
    """The kind of problem an exception met while checking is."""
    if isinstance(exc, (ObjectMissingError, FileNotFoundError)):
        return MISSING
    if isinstance(exc, CatalogError):
        return CATALOG
    if isinstance(exc, TruncatedError):  # the storage answered: the file is damaged
        return CORRUPT
    if isinstance(exc, BackendError):
        return BACKEND
    return CORRUPT


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" or "warning"
    message: str
    kind: str = CORRUPT


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    packs: int = 0
    index_files: int = 0
    objects: int = 0
    snapshots: int = 0
    reachable: int = 0
    bytes_read: int = 0
    packs_read: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, msg: str, kind: str = CORRUPT) -> None:
        self.problems.append(Problem("error", msg, kind))

    def warn(self, msg: str, kind: str = UNREFERENCED) -> None:
        self.problems.append(Problem("warning", msg, kind))


def check_repository(
    repo: Repository,
    *,
    read_data: bool = False,
    read_packs: Callable[[list[str]], list[str]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Check the repository's structure and every snapshot; with
    ``read_data`` read every pack and verify every object in it, or only
    the packs ``read_packs`` picks from the sorted pack names (a subset a
    night, so that a big repository is read whole over a week)."""
    report = CheckReport()
    # what other processes committed since this one opened the repository:
    # the catalog is checked as every command would find it
    repo.sync_catalog()

    # 1. index files
    table = _index_table(repo.backend, report)
    report.objects = table.unique

    # 2. packs against the index
    packs = dict(pack_files(repo.backend, lambda key: report.warn(
        f"ignoring {key}: not a pack file (a stray file; remove it by hand)", STRAY)))
    report.packs = len(packs)
    names = [table.pack(no).hex() for no in range(table.pack_count)]
    blocks = _check_packs(repo.backend, table, names, packs, report)

    # 3. snapshots: every object they reach must be indexed (and trees readable)
    reach = Reach(
        repo,
        table,
        lambda oid, needed_by: report.error(
            f"{needed_by}: object {oid.hex()} is not in any index (missing)", MISSING
        ),
        lambda oid, needed_by, exc: report.error(
            f"{needed_by}: tree {oid.hex()}: {exc}", kind_of(exc)
        ),
        counted=NEEDED,
    )

    def verified(oid: ObjectId) -> Location | None:
        rows = reach.rows(oid)
        return table.location(rows.start) if rows and table.marks[rows.start] & READ else None

    repo.verified = verified  # dictionaries' contents from what the walk verified
    try:
        with Scratch(repo.scratch_folder) as scratch:
            _check_snapshots(repo, reach, report, scratch)
            # after the walks, which decoded most blocks: only the headers
            # of the others are read
            required = _block_dictionaries(repo, table, names, blocks)
            del blocks
            _check_dictionaries(reach, required, scratch, report)
            report.reachable = reach.count
            from coursevault.store.journal_check import check_journal  # it builds on this

            # what only an index file not journaled yet names is the
            # journal's to mend, not the catalog's (index rebuild reads the journal)
            unjournaled = check_journal(
                repo, report, scratch, lambda name: _needed_in(repo, table, name)
            )
            _check_catalog(repo, table, report, unjournaled)
            for key, why in damaged_refs(repo):
                report.error(f"{key} is damaged: {why}", REF)
    finally:
        repo.verified = None

    # 4. read every pack and verify every object
    if read_data:
        chosen = sorted(packs) if read_packs is None else read_packs(sorted(packs))
        wanted = set(chosen)
        by_pack: dict[str, array[int]] = {}
        for row, entry in enumerate(table.entries()):
            pack = names[entry[2]]
            if pack in wanted:
                by_pack.setdefault(pack, array("I")).append(row)
        total = report.packs_read = len(chosen)
        for i, name in enumerate(chosen):
            rows = by_pack.get(name, array("I"))
            _read_pack(repo, name, [(table.oid(r), table.location(r)) for r in rows], report)
            if progress:
                progress(i + 1, total)
    return report


def _index_table(backend: Backend, report: CheckReport) -> ObjectTable:
    """Every entry of every readable index file; the others are reported."""
    index_files = index_names(backend, lambda msg: report.warn(msg, STRAY))

    def tables() -> Iterator[tuple[list[bytes], bytes]]:
        for name in index_files:
            report.index_files += 1
            try:
                data = backend.read(f"index/{name}")
            except (FileNotFoundError, CoursevaultError) as exc:
                report.error(f"index file {name}: unreadable: {exc}", kind_of(exc))
                continue
            if blake3.blake3(data).hexdigest() != name:
                report.error(
                    f"index file {name}: content does not match its name (corrupt; "
                    "`coursevault repair index` indexes its objects again from the packs)"
                )
                continue
            try:
                yield decode_index_table(data)
            except IndexFormatError as exc:
                report.error(f"index file {name}: {exc} (`coursevault repair index` replaces it)")

    return ObjectTable.from_index_tables(tables())


def _check_packs(
    backend: Backend,
    table: ObjectTable,
    names: list[str],
    packs: dict[str, int],
    report: CheckReport,
) -> dict[tuple[int, int], int]:
    """Each index entry's pack is there and long enough; packs no index names
    and temporary files are reported.  Returns each block, as (pack number,
    block offset), with a row in it."""
    sizes = [packs.get(name) for name in names]
    blocks: dict[tuple[int, int], int] = {}
    for row, (oid, _t, no, boff, blen, _off, _ln) in enumerate(table.entries()):
        blocks.setdefault((no, boff), row)
        size = sizes[no]
        if size is None:
            report.error(f"object {oid.hex()}: its pack {names[no]} is missing", MISSING)
        elif boff + blen > size:
            report.error(
                f"object {oid.hex()}: pack {names[no]} is truncated "
                f"({size} bytes, block ends at {boff + blen})"
            )
    for name in sorted(set(packs) - set(names)):
        report.warn(f"pack {name} is not named by any index (unreferenced; prune removes it)")
    for key in backend.list_temporary():
        report.warn(f"temporary file {key} left by an interrupted writer (prune removes it)")
    return blocks


def _check_snapshots(repo: Repository, reach: Reach, report: CheckReport, scratch: Scratch) -> None:
    """Walk every snapshot from its root; the dictionaries they leave for
    their series' next session (writers' only: a fault is a warning) are
    left in table ``nights`` of ``scratch``.

    Series by series, oldest first, each snapshot's dictionary checked
    right after its walk (what fails is checked again, and reported, by
    :func:`_check_dictionaries`): a night's new trees sit in blocks
    compressed against the dictionary its parent left, which was just read,
    and the dictionary it leaves is made of the trees the walk just read,
    from blocks still cached.  In listing (hash) order each walk loaded another series' chain
    again: 1,600 snapshots took 12,356 dictionary loads.  The listing, the
    catalog's order and the walk's order are tables of ``scratch``, not
    lists: memory stays flat however many snapshots there are."""

    def stray(key: str) -> None:
        report.warn(
            f"ignoring {key}: not a snapshot record (a stray file; remove it by hand)", STRAY
        )

    scratch.table("nights", "seq INTEGER PRIMARY KEY, snapshot TEXT, dictionary BLOB", rowid=True)
    scratch.table("records", "name TEXT PRIMARY KEY, digest BLOB, epoch REAL")
    nights: list[tuple[str, ObjectId]] = []
    records: list[tuple[str, bytes, float]] = []
    for snap_id in walk_order(repo.backend, repo.catalog, scratch, repo.snapshot_fanout, stray):
        if len(nights) >= 1024:
            scratch.fill("INSERT INTO nights (snapshot, dictionary) VALUES (?, ?)", nights)
            nights.clear()
        if len(records) >= scratch_file.BATCH:
            scratch.fill("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", records)
            records.clear()
        report.snapshots += 1
        try:
            record = repo.read_snapshot(snap_id)
            root = bytes.fromhex(str(record["root"]))
        except (CoursevaultError, ValueError) as exc:
            said = str(exc)  # read_snapshot's errors name the snapshot already
            report.error(said if snap_id in said else f"snapshot {snap_id}: {said}", kind_of(exc))
            continue
        with contextlib.suppress(KeyError, TypeError, ValueError):  # read_snapshot checked it
            row = snapshot_row(snap_id, record)
            text = json.dumps(record, sort_keys=True)  # as the catalog keeps it
            records.append((snap_id, row_digest(row.series, row.time, row.root, text), row.epoch))
        reach.trees([root], f"snapshot {snap_id}", SEEN, READ)
        dictionary = snapshot_dictionary(record)
        if dictionary is not None:
            if dictionary in reach.table:
                _check_dictionary(reach, "", dictionary, CheckReport())
            if dictionary not in reach.dictionaries:
                nights.append((snap_id, dictionary))
    scratch.fill("INSERT INTO nights (snapshot, dictionary) VALUES (?, ?)", nights)
    scratch.fill("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", records)


def _block_dictionaries(
    repo: Repository, table: ObjectTable, names: list[str], blocks: dict[tuple[int, int], int]
) -> dict[ObjectId, str]:
    """The dictionary every block names (reading block headers only), with
    the first block naming it: blocks need these to be read."""
    required: dict[ObjectId, str] = {}
    for (no, boff), row in sorted(blocks.items(), key=lambda b: (names[b[0][0]], b[0][1])):
        try:
            dict_id = repo.block_dictionary(table.location(row))
        except CoursevaultError:
            continue  # a missing or truncated pack is reported above
        if dict_id is not None and dict_id not in required:
            required[dict_id] = f"pack {names[no]} block at {boff} (its dictionary)"
    return required


def _check_dictionaries(
    reach: Reach, required: dict[ObjectId, str], scratch: Scratch, report: CheckReport
) -> None:
    """Every block naming a dictionary: the dictionary and what it reads are
    there (what those objects name need not be: see prune) -- those no
    snapshot's walk checked already.  Then the snapshots' dictionaries for
    the next night (table ``nights`` of ``scratch``), whose faults are warnings; after every required one, so
    that a fault in a chain a block needs is an error."""
    for dict_id, needed_by in required.items():
        _check_dictionary(reach, needed_by, dict_id, report)
    # What a snapshot leaves for its series' next session restores nothing: the
    # next session compresses without it if it is damaged (and prune drops it)
    optional = CheckReport()
    last = 0
    query = "SELECT seq, snapshot, dictionary FROM nights WHERE seq > ? LIMIT 1024"
    while batch := list(scratch.rows(query, (last,))):
        last = batch[-1][0]
        for _seq, snap_id, dict_id in batch:
            _check_dictionary(reach, f"snapshot {snap_id}'s dictionary", dict_id, optional)
    for problem in optional.problems:
        report.warn(
            f"{problem.message} (the next session of its series does without it)", problem.kind
        )


def _check_dictionary(reach: Reach, needed_by: str, dict_id: ObjectId, report: CheckReport) -> None:
    """A dictionary, the dictionaries before it and the objects they read are
    indexed and readable, link by link until one checked before.

    What a reader builds from them, the content, is not built here: it is
    the concatenation of those objects, so they are what can fail.  Each is
    read and hashed once in the whole check (``READ``): a list dictionary's
    members are the new trees of the night that left it, which that night's
    walk has just read.  (Rebuilding every content, each member read again
    through the catalog and its block hashed whole, was half of check's
    time at 1,600 snapshots.)"""
    if dict_id in reach.dictionaries:
        return
    if dict_id not in reach.table:
        reach.dictionaries.add(dict_id)
        report.error(f"{needed_by}: object {dict_id.hex()} is not in any index (missing)", MISSING)
        return
    link: ObjectId | None = dict_id
    try:
        while link is not None and link not in reach.dictionaries:
            kind, payload = _read_once(reach, link, want=True)
            try:
                refs, _depth, flags = parse_dictionary(kind, payload)
            except ValueError as exc:
                raise CorruptionError(f"dictionary {link.hex()}: {exc}") from None
            if flags == DICT_WALK:  # its sources are what a walk of its tree reads
                reach.dictionary(link, needed_by, DICT, whole=False)
                return
            for oid in refs[flags:]:
                _read_once(reach, oid)
            reach.dictionaries.add(link)
            link = refs[0] if flags else None
    except CoursevaultError as exc:
        report.error(f"{needed_by}: {exc}", kind_of(exc))  # names the dictionary or object


def _read_once(reach: Reach, oid: ObjectId, want: bool = False) -> tuple[ObjectType, bytes]:
    """Mark ``oid`` needed, and read and verify it unless it was (``READ``);
    its type and bytes if ``want`` (read again, unhashed, if it was), else
    ``(type, b"")`` for one read before."""
    table = reach.table
    rows = reach.rows(oid)
    if not rows or not table.marks[rows.start] & READ:
        rows = reach.meet(oid, DICT) or rows  # counted once, as the walk counts
        if not rows:
            raise ObjectMissingError(oid.hex(), "not in any index")
        found = reach.repo.read_at(oid, table.location(rows.start))
        table.mark(rows, READ)
        return found
    if want:
        loc = table.location(rows.start)
        return loc.type, reach.repo.peek(oid, loc)
    return ObjectType(table.type(rows.start)), b""


def _read_pack(
    repo: Repository, name: str, entries: list[tuple[ObjectId, Location]], report: CheckReport
) -> None:
    try:
        data = repo.backend.read(pack_key(bytes.fromhex(name)))
    except (FileNotFoundError, CoursevaultError) as exc:
        report.error(f"pack {name}: unreadable: {exc}", kind_of(exc))
        return
    report.bytes_read += len(data)
    if blake3.blake3(data).hexdigest() != name:
        report.error(f"pack {name}: content does not match its name (corrupt or truncated)")
    found: dict[tuple[int, int, int], bytes] = {}
    named = {loc.block_offset for _oid, loc in entries}
    unread: set[int] = set()  # blocks whose dictionary is at fault, reported once
    reader = repo.block_reader
    try:
        for boff, blen in iter_blocks(data):
            try:
                raw, table = reader.decode(data[boff : boff + blen])
            except PackFormatError as exc:
                report.error(f"pack {name}: block at {boff}: {exc}")
                continue
            except CoursevaultError as exc:  # its dictionary cannot be read
                if boff in named:
                    report.error(
                        f"pack {name}: block at {boff}: its dictionary: {exc}", kind_of(exc)
                    )
                    unread.add(boff)
                # else nothing indexed lives there: prune may have removed the
                # dictionary of a block that holds only garbage
                continue
            for t, off, ln in table:
                kind = TYPES.get(t)
                if kind is not None and off + ln <= len(raw):
                    found[(boff, off, ln)] = object_id(kind, raw[off : off + ln])
    except PackFormatError as exc:
        report.error(f"pack {name}: {exc}")
    # every index entry naming this pack must find an object with its id there
    for oid, loc in entries:
        if loc.block_offset in unread:
            continue  # not known to be corrupt: its block cannot be decoded
        if found.get((loc.block_offset, loc.offset, loc.length)) != oid:
            report.error(f"pack {name}: object {oid.hex()} at block {loc.block_offset} is corrupt")


REPAIR_CATALOG = "`coursevault index rebuild` recreates it from the repository"
CATALOG_BATCH = 4096  # catalog rows read at a time
CATALOG_EXAMPLES = 5  # objects named per kind of catalog problem; the rest are counted


def _needed_in(repo: Repository, table: ObjectTable, name: str) -> set[ObjectId]:
    """The objects index file ``name`` names that a snapshot needs and the
    catalog, synced from the journal, cannot locate (a prune killed before
    journaling its new index files leaves objects the old ones still name:
    harmless)."""
    try:
        entries = repo.read_index(name)
    except (FileNotFoundError, CoursevaultError):
        return set()  # reported with the index files
    out = set()
    for oid, _loc in entries:
        rows = table.rows(oid)
        if rows and table.marks[rows.start] & NEEDED:
            out.add(oid)
    if out:
        out -= repo.catalog.has_many(list(out))
    return out


def _check_catalog(
    repo: Repository,
    table: ObjectTable,
    report: CheckReport,
    unjournaled: set[ObjectId],
) -> None:
    """The catalog, which every read goes through, against the index files:
    each reachable object is located where an index file says (its snapshot
    rows were synced with the repository's files before the walk), but for
    those only index files the journal does not name yet name (``unjournaled``:
    no catalog can know them; check_journal reports those files).  A catalog is a cache, so what is wrong
    with it loses nothing; but until it is rebuilt, exports fail.

    Both are in id order: the catalog is read a batch at a time and merged
    with the table, not looked up object by object."""
    catalog = repo.catalog
    wrong: list[str] = []
    count = 0
    packs = [table.pack(no) for no in range(table.pack_count)]
    last = b""  # the last reachable id, once checked
    located = True  # whether one of its rows is where the catalog says
    try:
        batch = catalog.locations_after(b"", CATALOG_BATCH)
        at = 0
        for (oid, t, no, boff, blen, off, ln), mark in zip(
            table.entries(), table.marks, strict=True
        ):
            if not mark & NEEDED:
                continue
            if oid != last:  # an object's first row (its copies follow)
                if not located and last not in unjournaled:
                    count += 1
                    if len(wrong) < CATALOG_EXAMPLES:
                        wrong.append(last.hex())
                last, located = oid, False
                while batch and batch[at][0] < oid:
                    at += 1
                    if at == len(batch):
                        batch, at = catalog.locations_after(batch[-1][0], CATALOG_BATCH), 0
            if not located and batch:
                located = batch[at] == (oid, t, packs[no], boff, blen, off, ln)
        if not located and last not in unjournaled:
            count += 1
            if len(wrong) < CATALOG_EXAMPLES:
                wrong.append(last.hex())
    except CoursevaultError as exc:
        report.error(f"catalog {catalog.shown}: {exc}", CATALOG)
        return
    if count:
        report.error(
            f"catalog {catalog.shown}: {count} reachable objects are not located where the "
            f"index files say (e.g. {', '.join(wrong)}); {REPAIR_CATALOG}",
            CATALOG,
        )
