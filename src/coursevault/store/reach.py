"""Reachability: what snapshot roots and dictionaries keep, marked on an ObjectTable.

One walker for every command that must know what a repository needs --
``check`` (which reports every problem and goes on), ``prune`` (which stops
at the first object it cannot find, or it would delete what that object
names) and the coming ``sync`` (which copies what prune would keep).  The
policy on a missing or unreadable object is the caller's (``on_missing``,
``on_damaged``); the walk, its marks and the dictionary chains are here.

Memory is the ObjectTable's byte of marks per index entry plus the stack of
refs not yet followed: no set of every reached id (restic #3844: prune
needing three times the index in RAM).

:func:`walk_tail_first` is the other walk a repository makes: the one whose
trees are a walk dictionary's content (docs/format.md, "Dictionaries"), in
priority order over the catalog rather than marks over a table.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from coursevault.errors import CorruptionError, CoursevaultError
from coursevault.store.catalog_sync import iter_snapshot_names
from coursevault.store.ids import ObjectId, ObjectType
from coursevault.store.objecttable import ObjectTable
from coursevault.store.treecodec import tree_refs

if TYPE_CHECKING:
    from coursevault.store.backend import Backend
    from coursevault.store.catalog import Catalog
    from coursevault.store.dictionaries import DictionaryReads
    from coursevault.store.pack import Location
    from coursevault.store.scratch import Scratch

# Ids a walk met last, kept to skip the table's lookup when met again (a new
# tree names mostly unchanged subtrees the last nights' walks met): two
# generations of this many, at most 13 MB, whatever the repository's size.
RECENT_MET = 1 << 15

# ``on_missing(oid, needed_by)``: an object a walk needs is in no index.
MissingHandler = Callable[[ObjectId, str], None]
# ``on_damaged(oid, needed_by, exc)``: a tree the walk needs cannot be read.
DamagedHandler = Callable[[ObjectId, str, Exception], None]


class Reach:
    """Marks, on ``table``'s rows, what roots and dictionaries reach.

    ``on_missing`` is called once per object met that no index names (it may
    raise to stop the walk); ``on_damaged``, if given, for a tree that cannot
    be read or decoded, and the walk goes on without what it names; without
    it the error propagates.  ``count`` is how many distinct objects the walks
    met (indexed or not), ``unindexed`` those no index names.
    """

    def __init__(
        self,
        repo: DictionaryReads,
        table: ObjectTable,
        on_missing: MissingHandler,
        on_damaged: DamagedHandler | None = None,
        counted: int = 0,
    ) -> None:
        self.repo = repo
        # the bits whose first on a row counts it (0: each bit's first does):
        # an object a walk and a dictionary both mark is one object
        self.counted = counted
        self.table = table
        self.on_missing = on_missing
        self.on_damaged = on_damaged
        self.unindexed: set[ObjectId] = set()
        self.count = 0
        # (start, stop) of the objects marked since block_dictionaries last looked
        self._fresh: array[int] | None = None
        # dictionary objects whose chain from them on is marked (or given up)
        self.dictionaries: set[ObjectId] = set()
        # by bit: ids met lately and their rows, newer and older (RECENT_MET)
        self._met: dict[int, tuple[dict[ObjectId, range], dict[ObjectId, range]]] = {}

    def meet(self, oid: ObjectId, bit: int, rows: range | None = None) -> range | None:
        """Mark ``oid``'s rows with ``bit``: its rows (empty if no index names
        it), or None if it was met before.  ``rows``: its rows, if known."""
        table = self.table
        if rows is None:
            rows = table.rows(oid)
        if not rows:
            if oid in self.unindexed:
                return None
            self.unindexed.add(oid)
        elif table.marks[rows.start] & bit:
            return None
        else:
            if table.marks[rows.start] & self.counted:
                self.count -= 1  # met before under another of the counted bits
            table.mark(rows, bit)
            if self._fresh is not None:
                self._fresh.extend((rows.start, rows.stop))
        self.count += 1
        return rows

    def trees(self, roots: Iterable[ObjectId], needed_by: str, bit: int, read: int = 0) -> None:
        """Mark with ``bit`` every object ``roots`` reach (depth first; an
        object marked before is not followed again), and with ``read`` each
        tree read and found to hash to its id."""
        table = self.table
        newer, older = self._met.get(bit, ({}, {}))
        stack = list(roots)
        while stack:
            oid = stack.pop()
            if oid in newer or oid in older:
                continue
            if len(newer) >= RECENT_MET:
                newer, older = {}, newer
            newer[oid] = rows = table.rows(oid)
            if self.meet(oid, bit, rows) is None:
                continue
            if not rows:
                self.on_missing(oid, needed_by)
                continue
            if table.type(rows.start) != ObjectType.TREE:
                continue
            try:
                _t, payload = self.repo.read_at(oid, table.location(rows.start))
                refs = tree_refs(payload)
            except (CoursevaultError, ValueError) as exc:
                if self.on_damaged is None:
                    raise
                self.on_damaged(oid, needed_by, exc)
                continue
            if read:
                table.mark(rows, read)
            stack.extend(refs)
        self._met[bit] = newer, older

    def rows(self, oid: ObjectId) -> range:
        """``table.rows(oid)``, from what walks met lately if it is there (a
        night's dictionary names the trees its walk just read)."""
        for newer, older in self._met.values():
            rows = newer.get(oid)
            if rows is None:
                rows = older.get(oid)
            if rows is not None:
                return rows
        return self.table.rows(oid)

    def _content(self, oid: ObjectId, needed_by: str, bit: int, strict: bool) -> None:
        rows = self.meet(oid, bit)
        if strict and rows is not None and not rows:
            self.on_missing(oid, needed_by)

    def dictionary(self, dict_id: ObjectId, needed_by: str, bit: int, *, whole: bool) -> None:
        """Mark with ``bit`` a dictionary, the list dictionaries it continues
        and the objects their content is read from -- not what those name (a
        walk dictionary reads a few upper trees of a snapshot that may be
        forgotten).  A link marked before ends the chain.

        ``whole``: read the whole chain before marking anything, so a damaged
        chain keeps nothing, and report unindexed objects (prune); otherwise
        mark link by link as read, so what was read before a damaged link is
        counted (check, which reports the error the chain raises).  Errors
        reading the chain propagate either way.
        """
        if dict_id in self.dictionaries:
            return
        links: Iterator[tuple[ObjectId, list[ObjectId]]] = self.repo.dictionary_chain(
            dict_id, self.dictionaries
        )
        if whole:
            chain = []
            for link, sources in links:
                if link in self.dictionaries:
                    break  # and the rest of the chain with it
                chain.append((link, sources))
            self._content(dict_id, needed_by, bit, whole)
            links = iter(chain)
        for link, sources in links:
            if link in self.dictionaries:
                return
            self.dictionaries.add(link)
            self._content(link, needed_by, bit, whole)
            for oid in sources:
                self._content(oid, f"dictionary {link.hex()}", bit, whole)
            needed_by = f"dictionary {link.hex()}"

    def block_dictionaries(self, kept: int, checked: int, bit: int) -> None:
        """Mark with ``bit`` the dictionary chain of every block holding a row
        marked ``kept``, until no newly marked row's block names another.

        Every copy's block counts, not only the one a reader would pick: until
        a prune's old index files are gone a reader may take any copy.  Rows
        done are marked ``checked``.  Errors propagate (prune stops).  The
        table is read once; each later round looks only at the rows the last
        round's chains marked (a round over every row per link of the
        longest chain made prune superlinear).
        """
        marks = self.table.marks
        rows: Iterable[int] = range(len(self.table))
        while True:
            self._fresh = array("Q")  # (start, stop) of each object marked
            needed: set[ObjectId] = set()
            for row in rows:
                if marks[row] & kept and not marks[row] & checked:
                    marks[row] |= checked
                    named = self.repo.block_dictionary(self.table.location(row))
                    if named is not None and named not in self.dictionaries:
                        needed.add(named)
            for named in sorted(needed):
                self.dictionary(named, "a block's dictionary", bit, whole=True)
            fresh, self._fresh = self._fresh, None
            if not fresh:
                return
            rows = (r for i in range(0, len(fresh), 2) for r in range(fresh[i], fresh[i + 1]))


def walk_order(
    backend: Backend,
    catalog: Catalog,
    scratch: Scratch,
    fanout: bool,
    on_stray: Callable[[str], None] = lambda _key: None,
) -> Iterator[str]:
    """The snapshot files listed in ``snapshots/``, in the order walks
    should take them: series by series, oldest first (the catalog's order),
    then those no catalog row names, by name.  A night's new trees sit in
    blocks compressed against the dictionary its parent left, so in this
    order each series' chain of dictionaries is read about once; in listing
    (hash) order ``check`` loaded 12,356 dictionaries for 1,600 snapshots.

    The listing (table ``listed``, left for the caller) and the catalog's
    order are tables of ``scratch`` (on disk), read back a batch at a time:
    memory does not grow with the snapshots.  ``on_stray(key)`` is told of files in
    ``snapshots/`` that are not snapshot records."""

    scratch.table("listed")
    scratch.fill(
        "INSERT OR IGNORE INTO listed VALUES (?)",
        ((name,) for name in iter_snapshot_names(backend, fanout, on_stray)),
    )
    scratch.table("ranked", "rank INTEGER PRIMARY KEY, name TEXT", rowid=True)
    scratch.fill("INSERT INTO ranked (name) VALUES (?)", ((n,) for n in catalog.snapshot_order()))

    def order() -> Iterator[str]:
        yield from scratch.batches(
            "SELECT r.rank, r.name FROM ranked r JOIN listed l ON l.name = r.name "
            "WHERE r.rank > ? ORDER BY r.rank LIMIT ?"
        )
        scratch.table("unranked", "seq INTEGER PRIMARY KEY, name TEXT", rowid=True)
        scratch.execute(
            "INSERT INTO unranked (name) "
            "SELECT name FROM listed EXCEPT SELECT name FROM ranked ORDER BY name"
        )
        yield from scratch.batches(
            "SELECT seq, name FROM unranked WHERE seq > ? ORDER BY seq LIMIT ?"
        )

    return order()


def walk_tail_first(
    repo: DictionaryReads,
    root: ObjectId,
    budget: int,
    member_max: int,
    unindexed: list[ObjectId] | None = None,
    located: Mapping[ObjectId, Location] | None = None,
) -> tuple[int, bytearray, list[ObjectId]]:
    """The content of a walk dictionary: from ``root``, the payloads of the
    trees of at most ``member_max`` bytes, the tail of every list first,
    until the next would pass ``budget``.

    What a course's next night rewrites are the paths to its changes, and
    those are mostly at the ends of lists: Moodle writes records in id
    order, so new posts, attempts, grades and log lines are appended.  So
    the walk takes trees by *priority*: the root's is 1, and the i-th of a
    tree's k refs (from 0) gets the tree's priority times k - i -- the last
    ref the same, the one before twice it, and so on -- lowest first, ties
    in the order met; each id counts once, where first met.  (Measured on
    night 2 of the generated 100 MB course: 89 kB of packs against 109 kB
    breadth first and 138 kB with no dictionary.)  Naming them costs one id.

    Returns the deepest dictionary depth of the blocks read, the payloads
    joined (gathered in one buffer as they are read: kept one by one, those
    over pymalloc's 512 bytes sat in the C heap between the blocks decoded
    after them -- the night after the demo M course's full backup peaked
    about 1 MB higher), and the trees to keep: the content's and the one the walk stops at.
    Blobs and larger trees are passed by the catalog's type and length,
    unread, so a prune keeps little more than the content, and the walk
    reads the same after it.  Ids the index lacks are passed too, and
    added to ``unindexed`` if given: the walk reads the same in another
    repository holding its trees only if that one lacks them too (sync).
    ``located``: the whole index as a mapping, where a caller holds one.
    """
    heap: list[tuple[int, int, ObjectId]] = [(1, 0, root)]
    met = {root}
    content = bytearray()
    sources: list[ObjectId] = []
    size = 0
    depth = 0
    blocks: set[tuple[bytes, int]] = set()
    while heap:
        priority, _order, oid = heapq.heappop(heap)
        loc = repo.catalog.lookup(oid) if located is None else located.get(oid)
        if loc is None and unindexed is not None:
            unindexed.append(oid)
        # a blob, or one a prune freed since: the walk treats them alike
        if loc is None or loc.type != ObjectType.TREE or loc.length > member_max:
            continue
        if size + loc.length > budget:
            sources.append(oid)  # kept too: where the walk stops must not move
            break
        # its own hash only: a walk reads a few trees from each of many
        # blocks, where learning whole blocks (get) hashed all of them
        payload = repo.read_once_at(oid, loc)
        content += payload
        sources.append(oid)
        size += len(payload)
        if (loc.pack, loc.block_offset) not in blocks:
            blocks.add((loc.pack, loc.block_offset))
            depth = max(depth, repo.block_depth(loc))
        try:
            refs = tree_refs(payload)
        except ValueError as exc:
            raise CorruptionError(f"tree {oid.hex()}: {exc}") from None
        k = len(refs)
        for i, ref in enumerate(refs):
            if ref not in met:
                met.add(ref)
                heapq.heappush(heap, (priority * (k - i), len(met), ref))
    return depth, content, sources
