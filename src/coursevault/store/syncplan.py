"""What a sync copies: the plan of objects the destination lacks.

Part of ``sync`` (``replicate.py``, which copies what this plans): the
walk of the snapshots to copy and the dictionaries they leave, in the
order their objects may be indexed at the destination.
"""

from __future__ import annotations

from coursevault.errors import CorruptionError, CoursevaultError, ObjectMissingError
from coursevault.store.dictionaries import (
    DICT_MEMBER_MAX,
    DICT_WALK,
    MAX_DICT_DEPTH,
    WALK_BUDGET,
    parse_dictionary,
)
from coursevault.store.ids import ObjectId, ObjectType
from coursevault.store.pack import Location
from coursevault.store.reach import walk_tail_first
from coursevault.store.repository import Repository
from coursevault.store.treecodec import tree_refs

# Decoded blocks a first sync's walk keeps (see SyncPlan.__init__).
WHOLE_CACHE_BYTES = 48 * 1024 * 1024


class SyncPlan:
    """What the destination lacks of what snapshots reach, children before
    parents (a post-order), with each object's location at the source.

    A tree the destination indexes is not taken for complete: a prune keeps
    a dictionary's trees without what they name.  What is complete there is
    what a snapshot published there reaches (every writer publishes a
    snapshot last, and prune keeps what snapshots reach).  So a snapshot is
    walked against a *base* -- its parent, when that one is published at the
    destination or planned here -- side by side: a tree's refs that are refs
    of the base's tree at the same place are in the base, and are not
    walked.  A night's walk reads the paths to what changed, not the course.
    """

    def __init__(
        self,
        src: Repository,
        dst: Repository | None,
        dry_run: bool = False,
        *,
        whole: bool = False,
    ) -> None:
        self.src = src
        self.dst = dst
        self.dry_run = dry_run
        # A first sync of everything plans about every object the source
        # indexes: one read of its whole table then beats a query for each
        # tree's refs (57,000 queries, 1.8 s of a 5 s sync of 67,000
        # objects), at the memory the plan takes anyway.  The destination's
        # catalog is asked nothing while it indexes nothing.
        self._dst_empty = dst is None or dst.catalog.count_objects() == 0
        self._all: dict[ObjectId, Location] | None = (
            dict(src.catalog.iter_objects()) if whole and self._dst_empty else None
        )
        # Trees read unverified (``peek``): the copy hashes every object
        # before anything names it at the destination, so the walk need
        # not hash them first (a first sync's objects are almost all trees:
        # hashing them twice was a fifth of its time).  A walk that fails
        # so is walked again verified, to name what is damaged.
        self._peek = self._all is not None
        if self._peek:
            # a walk of every course goes back to blocks an 8 MiB cache of
            # decoded blocks had dropped: each was decoded seven times
            src.cache_bytes = max(src.cache_bytes, WHOLE_CACHE_BYTES)
        self.locs: dict[ObjectId, Location] = {}
        self.order: list[ObjectId] = []
        # planned for a dictionary, without what they name (yet)
        self.shallow: set[ObjectId] = set()
        # planned dictionaries whose content is known to read the same at
        # the destination once their sources are indexed there: a walk that
        # met no id the source's index lacks, a list whose chain is such
        self.exact: dict[ObjectId, bool] = {}
        self.previous: dict[ObjectId, ObjectId | None] = {}
        # refs met but not yet visited: (location at the source, at the destination?)
        self._looked_up: dict[ObjectId, tuple[Location | None, bool]] = {}
        # trees the destination has that a walk went through (for what they name)
        self.walked: set[ObjectId] = set()

    @property
    def whole(self) -> bool:
        """A first sync of everything: the source's whole index is read."""
        return self._all is not None

    def _rollback(self, start: int, added: list[ObjectId]) -> None:
        for oid in added:
            del self.locs[oid]
            self.shallow.discard(oid)
        del self.order[start:]

    def add_snapshot(self, root: ObjectId, base: ObjectId | None, needed_by: str) -> None:
        """Plan what ``root`` reaches and the destination lacks, not walking
        what the tree ``base`` (complete there or planned) reaches too."""
        start, added = len(self.order), list[ObjectId]()
        try:
            self._walk(root, base, needed_by, added)
        except CoursevaultError:
            self._rollback(start, added)
            if not self._peek:
                raise
            self._peek = False  # again, hashing what it reads: the error names the damage
            self.add_snapshot(root, base, needed_by)

    def add_dictionary(self, dict_id: ObjectId, needed_by: str) -> None:
        """Plan a dictionary, the list dictionaries it continues and the
        objects their content is read from (not what those name: prune's
        rule), oldest link first, each link after its sources: a link
        indexed at the destination comes with its chain.  A missing or
        damaged link or source at the source plans none of it."""
        start, added = len(self.order), list[ObjectId]()
        try:
            chain: list[tuple[ObjectId, list[ObjectId]]] = []
            link: ObjectId | None = dict_id
            while link is not None and link not in self.locs and not self._dst_has(link):
                if len(chain) > MAX_DICT_DEPTH:
                    raise CorruptionError(f"dictionary {dict_id.hex()}: its chain runs too deep")
                sources, previous = self._dictionary_links(link)
                chain.append((link, sources))
                link = previous
            for link, _sources in reversed(chain):  # oldest first: a link after its previous
                previous = self.previous.get(link)
                if previous is not None:
                    self.exact[link] = self.exact.get(previous, False)
            for link, sources in reversed(chain):
                for oid in [*sources, link]:
                    if oid in self.locs or self._dst_has(oid):
                        continue
                    self._plan(oid, needed_by, added)
                    self.order.append(oid)
                    self.shallow.add(oid)
        except CoursevaultError:
            self._rollback(start, added)
            raise

    def _dictionary_links(self, dict_id: ObjectId) -> tuple[list[ObjectId], ObjectId | None]:
        """(the objects its content is read from, the dictionary it continues)
        of a dictionary object (docs/format.md, "Dictionaries").  A list
        dictionary names them: read from its refs, its content is not
        rebuilt (that reads its whole chain); a walk dictionary's are its walk."""
        kind, payload = self.src.get(dict_id, self._all)
        try:
            refs, _depth, flags = parse_dictionary(kind, payload)
        except ValueError as exc:
            raise CorruptionError(f"dictionary {dict_id.hex()} at the source: {exc}") from None
        if flags == DICT_WALK and self._walked_whole(refs[0]):
            # Everything its walk can meet is planned before it, and nothing
            # else is at the destination: the walk reads the same there.  Not
            # walked here (a fifth of a first sync's time); the destination's
            # first reader walks it once.
            self.exact[dict_id] = True
            return [], None
        if flags == DICT_WALK:
            unindexed: list[ObjectId] = []
            depth, walked, sources = walk_tail_first(
                self.src, refs[0], WALK_BUDGET, DICT_MEMBER_MAX, unindexed, self._all
            )
            self.exact[dict_id] = not unindexed
            if not unindexed and self.dst is not None and not self.dry_run:
                # the next night there compresses against it: no walk there to read it
                depth = 1 + max(depth, self.src.block_depth(self.src.locate(dict_id)))
                self.dst.keep_walk_content(dict_id, depth, bytes(walked))
            return sources, None
        previous = refs[0] if flags else None
        # its content is its members' and its chain's: exact where that is
        self.previous[dict_id] = previous
        self.exact[dict_id] = previous is None
        return refs[flags:], previous

    def _walked_whole(self, root: ObjectId) -> bool:
        """Is ``root`` planned with all it reaches, into a destination that
        held nothing when the plan began (a first sync of everything)?  A
        walk of the source that met an object its index lacks stopped the
        plan, so every object below ``root`` is planned, ranked before
        whatever is planned next."""
        return self._all is not None and root in self.locs and root not in self.shallow

    def _dst_has(self, oid: ObjectId) -> bool:
        return not self._dst_empty and self.dst is not None and self.dst.catalog.has(oid)

    def _src_lookup(self, oid: ObjectId) -> Location | None:
        if self._all is not None:
            return self._all.get(oid)
        return self.src.catalog.lookup(oid)

    def _plan(
        self,
        oid: ObjectId,
        needed_by: str,
        added: list[ObjectId],
        loc: Location | None = None,
    ) -> Location:
        loc = loc or self._src_lookup(oid)
        if loc is None:
            raise ObjectMissingError(
                oid.hex(), f"needed by {needed_by}, at the source (run `coursevault check` there)"
            )
        self.locs[oid] = loc
        added.append(oid)
        return loc

    def _refs(self, oid: ObjectId) -> list[ObjectId]:
        try:
            if self._peek and self._all is not None:
                return tree_refs(self.src.peek(oid, self._all[oid]))
            return tree_refs(self.src.get(oid, self._all)[1])
        except ValueError as exc:
            raise CorruptionError(f"tree {oid.hex()} at the source: {exc}") from None

    def _walk(
        self, root: ObjectId, base: ObjectId | None, needed_by: str, added: list[ObjectId]
    ) -> None:
        # A tree is appended after everything it names: an object still on
        # the stack unexpanded when met again is below it (a DAG has no
        # cycles), so it is appended first.
        stack: list[tuple[ObjectId, ObjectId | None, bool]] = [(root, base, False)]
        locs = self.locs
        while stack:
            oid, counterpart, expanded = stack.pop()
            if expanded:
                self.order.append(oid)
                continue
            if oid == counterpart or (oid in locs and oid not in self.shallow):
                continue
            cached = self._looked_up.pop(oid, None)
            found, there = cached or (self._src_lookup(oid), self._dst_has(oid))
            if oid in self.shallow:  # planned already: now what it names too
                self.shallow.discard(oid)
                loc = locs[oid]
            elif there:
                if oid in self.walked:
                    continue
                if found is None:
                    raise ObjectMissingError(oid.hex(), f"needed by {needed_by}, at the source")
                if found.type != ObjectType.TREE:
                    continue  # a blob there is whole
                self.walked.add(oid)
                loc = found
            else:
                loc = self._plan(oid, needed_by, added, found)
                stack.append((oid, None, True))
            if loc.type != ObjectType.TREE:
                continue
            refs = self._refs(oid)
            other: list[ObjectId] = []
            if counterpart is not None:
                cloc = self._src_lookup(counterpart)
                if cloc is not None and cloc.type == ObjectType.TREE:
                    other = self._refs(counterpart)
            in_base = set(other)
            pushed = []
            for j in range(len(refs) - 1, -1, -1):
                ref = refs[j]
                if ref not in in_base:
                    stack.append((ref, other[j] if j < len(other) else None, False))
                    pushed.append(ref)
            self._look_up(pushed)

    def _look_up(self, oids: list[ObjectId]) -> None:
        """Where the source holds ``oids`` and whether the destination has
        them, in two queries for a tree's refs instead of two for each."""
        if self._all is not None:
            return  # every lookup is a dict's, and the destination has nothing
        todo = [o for o in oids if o not in self.locs and o not in self._looked_up]
        if not todo:
            return
        found = self.src.catalog.lookup_many(todo)
        there = self.dst.catalog.has_many(todo) if not self._dst_empty and self.dst else set()
        for oid in todo:
            self._looked_up[oid] = (found.get(oid), oid in there)
