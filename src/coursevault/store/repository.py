"""The repository: config, objects in packs, index files, snapshots, refs.

Write order is what makes a crash harmless (docs/format.md, "Durability"):

1. packs are written (atomically) as they fill;
2. on commit, index files naming every new object are written;
3. only then is the snapshot file written, so a visible snapshot never
   references an object that is not durable and indexed.

A writer killed before step 3 leaves at most unreferenced packs, which
``check`` reports and ``prune`` removes.  A writer that fails cleanly (bad
input) deletes the packs it wrote: nobody else can know them, because their
objects were never indexed.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import blake3
import zstandard

from coursevault.errors import (
    BackendError,
    BadInputError,
    ChecksumMismatchError,
    CorruptionError,
    FormatVersionError,
    NoRepositoryError,
    ObjectMissingError,
    RepositoryExistsError,
)
from coursevault.store.backend import Backend
from coursevault.store.catalog import Catalog, SnapshotRow
from coursevault.store.dictcache import DictionaryCache
from coursevault.store.ids import TYPES, ObjectId, ObjectType, object_id
from coursevault.store.index import (
    MAX_ENTRIES_PER_FILE,
    IndexFormatError,
    Row,
    decode_index,
    encode_index_rows,
    index_key,
)
from coursevault.store.locks import Lock
from coursevault.store.pack import (
    BLOCK_HEAD,
    DICT_REF,
    BlockReader,
    Location,
    PackFormatError,
    PackWriter,
    block_dictionary,
    pack_key,
)
from coursevault.store.pending import PendingIndex
from coursevault.store.treecodec import (
    decode_tree,
    encode_tree,
    read_varint,
    tree_refs,
    write_varint,
)

# version 2 adds dictionary blocks (codec 2), version 3 walk dictionaries
FORMAT_VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
# 1 MiB blocks: on the generated 50 MB course night 1 stores 11.8 MB instead
# of 13.7 MB at 128 KiB (zstd finds more of a forum's repeats in a block) and
# ingests faster (fewer blocks to seal); a night's new objects fill less than
# one block either way.  Reading one object decodes its block, ~1 ms.
DEFAULT_BLOCK_SIZE = 1024 * 1024
# Readers hold whole blocks; a dictionary block's window reaches 8 MiB.
MIN_BLOCK_SIZE = 1024
MAX_BLOCK_SIZE = 8 * 1024 * 1024
DEFAULT_LEVEL = 3
# Decoded blocks (and the objects learned from them) kept by a reader, by
# bytes, so that memory does not grow with a repository's block size.
BLOCK_CACHE_BYTES = 8 * 1024 * 1024
# Dictionaries (see docs/format.md, "Dictionaries"): a dictionary object names
# an earlier dictionary and objects; their bytes, concatenated, are the
# raw-content zstd dictionary of the blocks that name it.  Reading a block may
# need a dictionary, whose objects may sit in blocks needing another: the
# repository's dictionary_depth bounds that chain for writers, MAX_DICT_DEPTH
# for readers.
DICT_MAGIC = b"cvdict"
DEFAULT_DICT_DEPTH = 8  # the repository's "dictionary_depth" unless init says otherwise
MAX_DICT_DEPTH = 16  # what readers follow at most
DICT_BUDGET = 1 << 20  # bytes of content a list dictionary keeps at most
# A walk dictionary reads more: night 2 of the generated 100 MB course packs to
# 89 kB against 1 MiB of night 1's trees, 80 kB against 2 MiB, 70 kB against
# 4 MiB -- given hash tables that big (DICT_PARAMS): at level 3's own (2^17
# entries) a bigger dictionary did worse, not better.  2^19 entries keep
# nearly all of it (pack+index growth 102.7 kB against 102.1 kB at 2^21) for
# 24 MB less peak memory.
WALK_BUDGET = 4 << 20
DICT_PARAMS = {"window_log": 23, "hash_log": 19, "chain_log": 19}  # at least these
DICT_MEMBER_MAX = 64 * 1024  # larger objects (file contents) make poor dictionaries
# A dictionary names its members: 32 bytes each, which no compression shrinks.
# On a big night the newest 128 trees are dictionary enough (measured against
# 256: night 2 of a 10 MB course 1.7 kB smaller, moodle2cc nights no larger).
DICT_MEMBERS = 128
DICT_MIN = 1024
DICT_CACHE = 16
DICT_WALK = 2  # the flags of a walk dictionary (format version 3)
# What a session waiting for its dictionary holds in one open block at most
# (WriteSession.use_dictionary): night 2 of the generated 1 GB course writes
# 0.85 MB of new objects.
DEFER_BYTES = 8 << 20
# A pack of tiny records (quiz steps, log lines) reaches 16 MiB only after
# hundreds of thousands of objects; the writer's map of them must stay small.
MAX_PACK_OBJECTS = 32_768


def snapshot_key(snap_id: str) -> str:
    return f"snapshots/{snap_id}"


def default_cache_dir() -> Path:
    """Where catalogs live unless told otherwise (the CLI honours XDG_CACHE_HOME)."""
    return Path.home() / ".cache" / "coursevault"


class _Loaded(NamedTuple):
    """A dictionary, built from its object and what it reads."""

    depth: int
    content: bytes
    previous: ObjectId | None  # the list dictionary it continues
    sources: list[ObjectId]  # the objects its content is read from
    walk: bool


@dataclass
class WriteStats:
    new_objects: int = 0
    new_bytes: int = 0  # uncompressed payload bytes of new objects
    stored_bytes: int = 0  # bytes of pack files written
    packs: int = 0


class Repository:
    """An open repository; see :meth:`init` and :meth:`open`."""

    def __init__(
        self,
        backend: Backend,
        config: dict[str, Any],
        catalog: Catalog,
        cache_folder: Path | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self.id: str = config["id"]
        self.catalog = catalog
        self._disk_dicts = DictionaryCache(cache_folder / "dictionaries") if cache_folder else None
        self._blocks: OrderedDict[tuple[bytes, int], tuple[bytes, list[tuple[int, int, int]]]] = (
            OrderedDict()
        )
        # Verified objects of the blocks a reader came back to (see get).
        self._recent: dict[ObjectId, tuple[ObjectType, bytes]] = {}
        self._recent_blocks: OrderedDict[tuple[bytes, int], tuple[list[ObjectId], int]] = (
            OrderedDict()
        )
        self._blocks_bytes = 0  # raw bytes of the blocks in _blocks
        self._recent_bytes = 0  # and of the objects in _recent
        self._seen_blocks: dict[tuple[bytes, int], None] = {}
        self._dicts: OrderedDict[ObjectId, zstandard.ZstdDecompressor] = OrderedDict()
        self._dict_content: OrderedDict[ObjectId, tuple[int, bytes]] = OrderedDict()
        self._resolving: set[ObjectId] = set()
        self._block_dicts: dict[tuple[bytes, int], ObjectId | None] = {}
        self._reader = BlockReader(self._decompressor)

    # -- creation and opening ---------------------------------------------------------
    @staticmethod
    def init(
        backend: Backend,
        *,
        pack_size: int = DEFAULT_PACK_SIZE,
        block_size: int = DEFAULT_BLOCK_SIZE,
        level: int = DEFAULT_LEVEL,
        dictionary_depth: int = DEFAULT_DICT_DEPTH,
    ) -> dict[str, Any]:
        """Create a new, empty repository; fails if one exists there.

        ``dictionary_depth`` bounds chains of dictionaries (0: none are used).
        Deeper chains compress more nights against their predecessors, but
        prune can free a forgotten night's small trees only once no kept
        block's chain reaches them: at most that many nights later.
        """
        if not 0 <= dictionary_depth <= MAX_DICT_DEPTH:
            raise BadInputError(f"dictionary depth must be 0-{MAX_DICT_DEPTH}")
        if not MIN_BLOCK_SIZE <= block_size <= MAX_BLOCK_SIZE:
            raise BadInputError(
                f"block size must be {MIN_BLOCK_SIZE // 1024}-{MAX_BLOCK_SIZE // 1024} KiB"
            )
        config = {
            "version": FORMAT_VERSION,
            "id": secrets.token_hex(16),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "pack_size": pack_size,
            "block_size": block_size,
            "zstd_level": level,
            "dictionary_depth": dictionary_depth,
            "chunker": {"min": 16 * 1024, "avg": 64 * 1024, "max": 256 * 1024},
            "text_chunker": {"min": 1024, "avg": 4096, "max": 16 * 1024},
        }
        data = json.dumps(config, indent=2, sort_keys=True).encode() + b"\n"
        if not backend.create("config", data):
            raise RepositoryExistsError(f"a repository already exists at {backend.location()}")
        return config

    @classmethod
    def open(
        cls,
        backend: Backend,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        catalog_url: str | None = None,
        sync: bool = True,
    ) -> Repository:
        try:
            raw = backend.read("config")
        except FileNotFoundError:
            raise NoRepositoryError(f"no repository at {backend.location()}") from None
        try:
            config = json.loads(raw)
            version = int(config["version"])
            str(config["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptionError(
                f"repository config at {backend.location()} is unreadable"
            ) from exc
        if version not in SUPPORTED_VERSIONS:
            raise FormatVersionError(
                f"repository format version {version} is not supported "
                f"(this program reads versions {', '.join(map(str, SUPPORTED_VERSIONS))})"
            )
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        folder = base / config["id"]
        if catalog_url is None:
            folder.mkdir(parents=True, exist_ok=True)
            catalog_url = f"sqlite:///{folder / 'catalog.sqlite'}"
        catalog = Catalog(catalog_url)
        repo = cls(backend, config, catalog, folder)
        known = catalog.get_meta("repository")
        if known is None:
            catalog.set_meta("repository", repo.id)
        elif known != repo.id:
            catalog.close()
            raise CorruptionError(
                f"catalog {catalog_url} belongs to repository {known}, not {repo.id}"
            )
        if sync:
            repo.sync_catalog()
        return repo

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- locks ------------------------------------------------------------------------
    def lock(self, *, exclusive: bool, operation: str) -> Lock:
        return Lock(self.backend, exclusive, operation).acquire()

    # -- catalog sync -----------------------------------------------------------------
    def sync_catalog(self) -> None:
        """Bring the catalog up to date with the repository's index and snapshot files."""
        # The catalog's view first, the listing second: a file another process
        # commits in between then shows up as new, never as "known but gone".
        known = self.catalog.index_files()
        listed = {key.split("/", 1)[1] for key, _ in self.backend.list("index/")}
        if known - listed:  # index files were removed (prune): start over
            self.catalog.clear_objects()
            known = set()
        for name in sorted(listed - known):
            self.catalog.add_index_file(name, self.read_index(name))
        in_cat = self.catalog.snapshot_ids()
        snaps = {key.split("/", 1)[1] for key, _ in self.backend.list("snapshots/")}
        for gone in in_cat - snaps:
            self.catalog.remove_snapshot(gone)
        for snap_id in sorted(snaps - in_cat):
            try:
                record = self.read_snapshot(snap_id)
                row = _snapshot_row(snap_id, record)
            except (CorruptionError, KeyError, TypeError, ValueError):
                continue  # reported by check; never listed as a usable snapshot
            self.catalog.add_snapshot(row)

    def rebuild_catalog(self) -> dict[str, int]:
        """Drop the catalog's contents and recreate them from the repository alone."""
        self.catalog.clear_objects()
        self.catalog.clear_snapshots()
        self.sync_catalog()
        return {
            "index_files": len(self.catalog.index_files()),
            "objects": self.catalog.count_objects(),
            "snapshots": len(self.catalog.snapshot_ids()),
        }

    def read_index(self, name: str) -> list[tuple[bytes, Location]]:
        key = f"index/{name}"
        data = self.backend.read(key)
        if blake3.blake3(data).hexdigest() != name:
            raise CorruptionError(f"index file {name} does not match its hash")
        try:
            return list(decode_index(data))
        except IndexFormatError as exc:
            raise CorruptionError(f"index file {name}: {exc}") from exc

    # -- reading objects --------------------------------------------------------------
    def has(self, oid: ObjectId) -> bool:
        return self.catalog.has(oid)

    def locate(self, oid: ObjectId) -> Location:
        loc = self.catalog.lookup(oid)
        if loc is None:
            raise ObjectMissingError(oid.hex(), "not in any index")
        return loc

    def get(self, oid: ObjectId) -> tuple[ObjectType, bytes]:
        """Return (type, payload) of an object, verified against its id.

        Readers walk trees in about the order they were written, so the
        second read from a block hashes the whole block (its table of
        contents gives each object's slice; the hashes are its ids) and
        keeps its objects: later reads from it need neither a catalog
        lookup nor another hash.  A random read, which rarely comes back to
        its block, hashes only its own object.
        """
        hit = self._recent.get(oid)
        if hit is not None:
            return hit
        loc = self.locate(oid)
        key = (loc.pack, loc.block_offset)
        if key not in self._seen_blocks:
            self._seen_blocks[key] = None
            if len(self._seen_blocks) > 1024:
                self._seen_blocks.pop(next(iter(self._seen_blocks)))
            return self.read_at(oid, loc)
        self._learn_block(oid, loc)
        hit = self._recent.get(oid)
        if hit is None:  # the object at its location does not hash to its id
            raise ChecksumMismatchError(oid.hex(), loc.pack.hex())
        return hit

    def _learn_block(self, oid: ObjectId, loc: Location) -> None:
        key = (loc.pack, loc.block_offset)
        if key in self._recent_blocks:
            return
        raw, entries = self._block(oid, loc)  # decoded once already by read_at
        recent = self._recent
        learned = []
        size = 0
        for t, off, ln in entries:
            kind = TYPES.get(t)
            if kind is None or off + ln > len(raw):
                continue  # never matches an id; read_at reports it if asked
            data = raw[off : off + ln]
            found = object_id(kind, data)
            recent[found] = (kind, data)
            learned.append(found)
            size += ln
        self._recent_blocks[key] = (learned, size)
        self._recent_bytes += size
        while self._recent_bytes > BLOCK_CACHE_BYTES and len(self._recent_blocks) > 1:
            old, old_size = self._recent_blocks.popitem(last=False)[1]
            self._recent_bytes -= old_size
            for oid_old in old:
                recent.pop(oid_old, None)

    def read_at(self, oid: ObjectId, loc: Location) -> tuple[ObjectType, bytes]:
        raw, _entries = self._block(oid, loc)
        if loc.offset + loc.length > len(raw):
            raise ChecksumMismatchError(oid.hex(), loc.pack.hex(), "its slice runs past its block")
        data = raw[loc.offset : loc.offset + loc.length]
        if object_id(loc.type, data) != oid:
            raise ChecksumMismatchError(oid.hex(), loc.pack.hex())
        return loc.type, data

    def _read_block(self, oid: ObjectId, loc: Location) -> bytes:
        try:
            return self.backend.read(pack_key(loc.pack), loc.block_offset, loc.block_length)
        except FileNotFoundError:
            raise ObjectMissingError(oid.hex(), f"its pack {loc.pack.hex()} is missing") from None
        except BackendError as exc:
            raise CorruptionError(f"pack {loc.pack.hex()}: {exc}") from exc

    def _block(self, oid: ObjectId, loc: Location) -> tuple[bytes, list[tuple[int, int, int]]]:
        """(raw payload, table of contents) of the block at ``loc``, decoded once
        for the last BLOCK_CACHE_BYTES of blocks."""
        key = (loc.pack, loc.block_offset)
        cached = self._blocks.get(key)
        if cached is not None:
            self._blocks.move_to_end(key)
            return cached
        block = self._read_block(oid, loc)
        try:
            decoded = self._reader.decode(block)
        except PackFormatError as exc:
            raise CorruptionError(
                f"pack {loc.pack.hex()} block at {loc.block_offset} is corrupt: {exc}"
            ) from exc
        self._blocks[key] = decoded
        self._blocks_bytes += len(decoded[0])
        while self._blocks_bytes > BLOCK_CACHE_BYTES and len(self._blocks) > 1:
            self._blocks_bytes -= len(self._blocks.popitem(last=False)[1][0])
        return decoded

    def forget_packs(self, packs: set[bytes]) -> None:
        """Drop cached blocks and objects of packs that were deleted."""
        for key in [k for k in self._blocks if k[0] in packs]:
            self._blocks_bytes -= len(self._blocks.pop(key)[0])
        for key in [k for k in self._recent_blocks if k[0] in packs]:
            learned, size = self._recent_blocks.pop(key)
            self._recent_bytes -= size
            for oid in learned:
                self._recent.pop(oid, None)

    # -- dictionaries -----------------------------------------------------------------
    @property
    def block_reader(self) -> BlockReader:
        """A block decoder that resolves dictionaries through this repository."""
        return self._reader

    def dictionary(self, dict_id: ObjectId) -> tuple[int, bytes]:
        """(depth, content) of a dictionary object (docs/format.md, "Dictionaries").

        ``depth`` is how many dictionaries deep reading a block that names it
        can go: what the object says for a list dictionary, and for a walk
        dictionary what the walk found (its trees may sit in any earlier
        block, so only reading them tells).
        """
        cached = self._dict_content.get(dict_id)
        if cached is not None:
            self._dict_content.move_to_end(dict_id)
            return cached
        disk = self._disk_dicts
        found = disk.get(dict_id) if disk is not None else None
        if found is not None:
            depth, content = found
        else:
            loaded = self._load_dictionary(dict_id)
            depth, content = loaded.depth, loaded.content
            if loaded.walk and disk is not None:  # a list is quick to rebuild; a walk is not
                disk.put(dict_id, depth, content)
        self._dict_content[dict_id] = (depth, content)
        if len(self._dict_content) > 4:
            self._dict_content.popitem(last=False)
        return depth, content

    def dictionary_chain(self, dict_id: ObjectId) -> Iterator[tuple[ObjectId, list[ObjectId]]]:
        """Each dictionary of a chain -- this one, then the list dictionaries
        it continues -- with the objects its content is read from, for prune
        and check: a dictionary needs those objects kept, not what they name."""
        while True:
            loaded = self._load_dictionary(dict_id)
            yield dict_id, loaded.sources
            if loaded.previous is None:
                return
            dict_id = loaded.previous

    def _load_dictionary(self, dict_id: ObjectId) -> _Loaded:
        """A dictionary object is a tree whose body is ``"cvdict" varint depth
        varint flags``.  Flags 0 and 1 (list dictionary): ``refs`` are an
        earlier dictionary if flags is 1 (its content comes first), then the
        objects whose payloads follow, the last DICT_BUDGET bytes of all that.
        Flags 2 (walk dictionary): ``refs`` is one tree, whose walk
        (:meth:`_walk_trees`) gives the content.
        """
        if dict_id in self._resolving or len(self._resolving) > MAX_DICT_DEPTH:
            raise CorruptionError(f"dictionary {dict_id.hex()}: its chain loops or runs too deep")
        self._resolving.add(dict_id)
        try:
            kind, payload = self.get(dict_id)
            try:
                if kind != ObjectType.TREE:
                    raise ValueError("not a tree")
                refs, body = decode_tree(payload)
                if not body.startswith(DICT_MAGIC):
                    raise ValueError("not a dictionary object")
                depth, pos = read_varint(body, len(DICT_MAGIC))
                flags, _pos = read_varint(body, pos)
                if flags == DICT_WALK:
                    if len(refs) != 1:
                        raise ValueError("a walk dictionary names one tree")
                elif flags not in (0, 1) or flags > len(refs):
                    raise ValueError("bad dictionary flags")
            except ValueError as exc:
                raise CorruptionError(f"dictionary {dict_id.hex()}: {exc}") from None
            if flags == DICT_WALK:
                walk_depth, parts, sources = self._walk_trees(refs[0])
                own = self.block_depth(self.locate(dict_id))
                return _Loaded(1 + max(walk_depth, own), b"".join(parts), None, sources, True)
            parts = []
            if flags:
                parts.append(self.dictionary(refs[0])[1])
            parts += [self.get(m)[1] for m in refs[flags:]]
            previous = refs[0] if flags else None
            content = b"".join(parts)[-DICT_BUDGET:]
            return _Loaded(depth, content, previous, list(refs[flags:]), False)
        finally:
            self._resolving.discard(dict_id)

    def _walk_trees(self, root: ObjectId) -> tuple[int, list[bytes], list[ObjectId]]:
        """The content of a walk dictionary: from ``root``, the payloads of the
        trees of at most DICT_MEMBER_MAX bytes, the tail of every list first,
        until the next would pass WALK_BUDGET.

        What a course's next night rewrites are the paths to its changes, and
        those are mostly at the ends of lists: Moodle writes records in id
        order, so new posts, attempts, grades and log lines are appended.  So
        the walk takes trees by *priority*: the root's is 1, and the i-th of a
        tree's k refs (from 0) gets the tree's priority times k - i -- the last
        ref the same, the one before twice it, and so on -- lowest first, ties
        in the order met; each id counts once, where first met.  (Measured on
        night 2 of the generated 100 MB course: 89 kB of packs against 109 kB
        breadth first and 138 kB with no dictionary.)  Naming them costs one id.

        Returns the deepest dictionary depth of the blocks read, the payloads,
        and the trees to keep: the content's and the one the walk stops at.
        Blobs and larger trees are passed by the catalog's type and length,
        unread, so a prune keeps little more than the content, and the walk
        reads the same after it.
        """
        heap: list[tuple[int, int, ObjectId]] = [(1, 0, root)]
        met = {root}
        parts: list[bytes] = []
        sources: list[ObjectId] = []
        size = 0
        depth = 0
        blocks: set[tuple[bytes, int]] = set()
        while heap:
            priority, _order, oid = heapq.heappop(heap)
            loc = self.catalog.lookup(oid)
            # a blob, or one a prune freed since: the walk treats them alike
            if loc is None or loc.type != ObjectType.TREE or loc.length > DICT_MEMBER_MAX:
                continue
            if size + loc.length > WALK_BUDGET:
                sources.append(oid)  # kept too: where the walk stops must not move
                break
            # its own hash only: a walk reads a few trees from each of many
            # blocks, where learning whole blocks (get) hashed all of them
            payload = self.read_at(oid, loc)[1]
            parts.append(payload)
            sources.append(oid)
            size += len(payload)
            if (loc.pack, loc.block_offset) not in blocks:
                blocks.add((loc.pack, loc.block_offset))
                depth = max(depth, self.block_depth(loc))
            try:
                refs = tree_refs(payload)
            except ValueError as exc:
                raise CorruptionError(f"tree {oid.hex()}: {exc}") from None
            k = len(refs)
            for i, ref in enumerate(refs):
                if ref not in met:
                    met.add(ref)
                    heapq.heappush(heap, (priority * (k - i), len(met), ref))
        return depth, parts, sources

    def _decompressor(self, dict_id: ObjectId) -> zstandard.ZstdDecompressor:
        dctx = self._dicts.get(dict_id)
        if dctx is not None:
            self._dicts.move_to_end(dict_id)
            return dctx
        _depth, content = self.dictionary(dict_id)
        return self.remember_dictionary(dict_id, content)

    def remember_dictionary(self, dict_id: ObjectId, content: bytes) -> zstandard.ZstdDecompressor:
        """Keep a decompressor for ``dict_id`` (a writer registers its own, whose
        object is not indexed yet, so that it can read back what it wrote)."""
        zdict = zstandard.ZstdCompressionDict(content, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        dctx = zstandard.ZstdDecompressor(dict_data=zdict)
        self._dicts[dict_id] = dctx
        if len(self._dicts) > DICT_CACHE:
            self._dicts.popitem(last=False)
        return dctx

    def block_dictionary(self, loc: Location) -> ObjectId | None:
        """The dictionary the block at ``loc`` names, reading only its header."""
        key = (loc.pack, loc.block_offset)
        if key in self._block_dicts:
            return self._block_dicts[key]
        try:
            head = self.backend.read(
                pack_key(loc.pack),
                loc.block_offset,
                min(loc.block_length, BLOCK_HEAD.size + DICT_REF),
            )
            found = block_dictionary(head)
        except FileNotFoundError:
            raise ObjectMissingError("", f"pack {loc.pack.hex()} is missing") from None
        except (BackendError, PackFormatError) as exc:
            raise CorruptionError(
                f"pack {loc.pack.hex()} block at {loc.block_offset}: {exc}"
            ) from exc
        if len(self._block_dicts) > 100_000:
            self._block_dicts.clear()
        self._block_dicts[key] = found
        return found

    def block_depth(self, loc: Location) -> int:
        """How many dictionaries deep reading the block at ``loc`` goes (0: none)."""
        dict_id = self.block_dictionary(loc)
        if dict_id is None:
            return 0
        return self.dictionary(dict_id)[0]

    # -- snapshots --------------------------------------------------------------------
    def read_snapshot(self, snap_id: str) -> dict[str, Any]:
        try:
            data = self.backend.read(snapshot_key(snap_id))
        except FileNotFoundError:
            raise ObjectMissingError(snap_id, "no such snapshot") from None
        if object_id(ObjectType.SNAPSHOT, data).hex() != snap_id:
            raise CorruptionError(f"snapshot {snap_id} does not match its hash")
        try:
            record = json.loads(data)
            if not isinstance(record, dict) or "root" not in record or "course" not in record:
                raise ValueError("missing fields")
        except ValueError as exc:
            raise CorruptionError(f"snapshot {snap_id} is unreadable: {exc}") from exc
        return record

    def snapshots(self, course: str | None = None) -> list[SnapshotRow]:
        return self.catalog.snapshots(course)

    def update_head(self, course: str, snap_id: str, epoch: float) -> None:
        """Point ``refs/heads/<course>`` at the course's newest snapshot.

        Compare-and-swap, so two writers of one course never lose the newer head.
        """
        key = f"refs/heads/{course}"
        for _attempt in range(20):
            try:
                current: bytes | None = self.backend.read(key)
            except FileNotFoundError:
                current = None
            if current is not None:
                rows = [
                    s for s in self.catalog.snapshots(course) if s.id == current.decode().strip()
                ]
                if rows and rows[0].epoch > epoch:
                    return
            if self.backend.compare_and_swap(key, current, snap_id.encode() + b"\n"):
                self.catalog.set_ref(f"heads/{course}", snap_id)
                return
        raise BackendError(f"could not update {key}: too many concurrent updates")

    def delete_snapshot(self, snap_id: str) -> None:
        self.backend.delete(snapshot_key(snap_id))
        self.catalog.remove_snapshot(snap_id)

    # -- writing ----------------------------------------------------------------------
    def writer(
        self,
        operation: str = "backup",
        *,
        dictionary: ObjectId | None = None,
        defer_dictionary: bool = False,
    ) -> WriteSession:
        """A write session; ``dictionary`` is the dictionary object an earlier
        session of the same series made (see :meth:`WriteSession.make_dictionary`).
        ``defer_dictionary``: the series is not known yet; the caller names
        its dictionary later (:meth:`WriteSession.use_dictionary`)."""
        return WriteSession(self, operation, dictionary, defer_dictionary)

    # -- statistics -------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        packs = list(self.backend.list("packs/"))
        index = list(self.backend.list("index/"))
        snaps = self.catalog.snapshots()
        return {
            "repository": self.id,
            "location": self.backend.location(),
            "format_version": self.config["version"],
            "snapshots": len(snaps),
            "courses": len({s.course for s in snaps}),
            "objects": self.catalog.count_objects(),
            "packs": len(packs),
            "pack_bytes": sum(size for _, size in packs),
            "index_files": len(index),
            "index_bytes": sum(size for _, size in index),
        }


def dictionary_params(level: int) -> zstandard.ZstdCompressionParameters:
    """Compression parameters for blocks with a dictionary: the level's, with a
    window and hash tables big enough to reach into all of a walk's content
    (which readers need not know: any zstd decoder takes the frames)."""
    base = zstandard.ZstdCompressionParameters.from_level(level)
    bigger = {k: max(v, getattr(base, k)) for k, v in DICT_PARAMS.items()}
    return zstandard.ZstdCompressionParameters.from_level(level, **bigger)


def snapshot_dictionary(record: dict[str, Any]) -> ObjectId | None:
    """The dictionary a snapshot record names for the next session, if it names
    a well-formed one (a damaged record only loses its dictionary)."""
    found = record.get("dictionary")
    if not isinstance(found, str) or len(found) != 64:
        return None
    try:
        return bytes.fromhex(found)
    except ValueError:
        return None


def _snapshot_row(snap_id: str, record: dict[str, Any]) -> SnapshotRow:
    return SnapshotRow(
        snap_id,
        str(record["course"]),
        str(record.get("time", "")),
        float(record.get("epoch", 0.0)),
        str(record["root"]),
        record,
    )


class WriteSession:
    """Adds objects and, on commit, one snapshot; holds a shared lock meanwhile.

    Objects are deduplicated against the repository (catalog) and against what
    this session already wrote.  Nothing becomes visible to other processes
    before :meth:`commit`; :meth:`abort` removes every pack this session wrote.
    """

    def __init__(
        self,
        repo: Repository,
        operation: str,
        dictionary: ObjectId | None = None,
        defer_dictionary: bool = False,
    ) -> None:
        self.repo = repo
        self.session = secrets.token_hex(16)
        self._lock = repo.lock(exclusive=False, operation=operation)
        # The catalog was synced when the repository was opened; a prune may have
        # run since (it needs the exclusive lock, so not from here on).  Dedup
        # against a stale catalog would reference deleted objects: sync again.
        try:
            repo.sync_catalog()
        except BaseException:
            self._lock.release()
            raise
        cfg = repo.config
        self.pack_size = int(cfg["pack_size"])
        self._block_size = int(cfg["block_size"])
        self._level = int(cfg["zstd_level"])
        # a version-1 repository never gets dictionary blocks (its readers lack them)
        depth = int(cfg.get("dictionary_depth", 0)) if int(cfg["version"]) >= 2 else 0
        self._max_depth = min(depth, MAX_DICT_DEPTH)
        self._walks = int(cfg["version"]) >= 3  # walk dictionaries are format 3
        # dictionary compression: what this session compresses against, and the
        # small new objects it wrote (the next session's dictionary)
        self._dict: tuple[ObjectId, zstandard.ZstdCompressor] | None = None
        self._depth = 0  # dictionary depth of the blocks this session writes
        self._fresh: deque[tuple[ObjectId, int]] = deque()
        self._fresh_bytes = 0
        self._dict_made = False
        if dictionary is not None:
            try:
                self._use_dictionary(dictionary)
            except BaseException:
                self._lock.release()
                raise
        self._pack = self._new_pack()
        # Until use_dictionary is called, new objects stay in one open block
        # (up to DEFER_BYTES): what they compress against is not known yet.
        self._deferring = defer_dictionary and dictionary is None and self._max_depth > 0
        if self._deferring:
            self._pack.holding = True
        self._decoded: dict[int, bytes] = {}
        self._pending = PendingIndex()
        self._packs: list[bytes] = []
        self._indexed = False
        self._stats = WriteStats()
        self._closed = False

    def _new_pack(self) -> PackWriter:
        pack = PackWriter(self._block_size, self._level, self._known, DICT_MEMBERS)
        if self._dict is not None:
            pack.set_dictionary(*self._dict)
        return pack

    def _use_dictionary(self, dict_id: ObjectId) -> None:
        """Compress this session's blocks against ``dict_id``, if it is usable.

        A missing or damaged dictionary, or one whose chain is already the
        repository's ``dictionary_depth`` deep, only means plain compression: the backup goes on
        (and ``check`` reports damage).
        """
        repo = self.repo
        if not repo.catalog.has(dict_id):
            return
        try:
            depth, content = repo.dictionary(dict_id)
        except (ObjectMissingError, CorruptionError):
            return
        if depth > self._max_depth or len(content) < DICT_MIN:
            return
        zdict = zstandard.ZstdCompressionDict(content, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        params = dictionary_params(self._level)
        zdict.precompute_compress(compression_params=params)
        self._dict = (
            dict_id,
            zstandard.ZstdCompressor(compression_params=params, dict_data=zdict),
        )
        self._depth = depth
        repo.remember_dictionary(dict_id, content)

    def use_dictionary(self, dict_id: ObjectId | None) -> None:
        """Name the dictionary of a session opened with ``defer_dictionary``:
        the objects held so far, and all after them, are compressed against
        it if it is usable (see :meth:`_use_dictionary`); None for none.

        Why: ingest learns an archive's course from moodle_backup.xml, which
        comes after the activities.  Holding a night's few new objects until
        then spares reading the archive twice -- once to find the course,
        once to store it -- and a night whose new objects pass DEFER_BYTES
        (a first backup) gains little from a dictionary anyway.
        """
        if not self._deferring:
            return
        self._deferring = False
        if dict_id is not None:
            self._use_dictionary(dict_id)
            if self._dict is not None:
                self._pack.set_dictionary(*self._dict)
        self._pack.release()

    def _note_fresh(self, pack: PackWriter) -> None:
        """Remember the newest trees written (the next session's dictionary)."""
        if self._dict_made:
            return
        fresh = self._fresh
        for oid, ln in pack.recent_trees:
            if ln <= DICT_MEMBER_MAX:
                fresh.append((oid, ln))
                self._fresh_bytes += ln
        while self._fresh_bytes > DICT_BUDGET or len(fresh) > DICT_MEMBERS:
            self._fresh_bytes -= fresh.popleft()[1]

    def make_dictionary(self, walk: ObjectId | None = None) -> ObjectId | None:
        """Write a dictionary object for the next session of the same series and
        return its id (None if this session wrote too little to be worth one).

        By default its content is that of the dictionary this session used,
        followed by the newest trees this session wrote, the last DICT_BUDGET
        bytes of it: a night's new records are most like the last nights' new
        records.  It names the dictionary before it, not that one's members,
        so it costs 32 bytes per new tree, not per tree of the budget.

        ``walk`` (a tree this session wrote, e.g. the snapshot's root) asks for
        a walk dictionary instead, if this session used none: a first
        backup's newest trees are the tail of the course, which the next
        night rarely touches, while its upper trees are what that night
        rewrites, and one id names them all.  Not in a format-1 or -2
        repository, whose readers lack walk dictionaries.

        Call it before :meth:`commit`; the caller keeps the id (ingest puts it
        in the snapshot record, which is what keeps it from being pruned).
        """
        if self._dict_made:
            raise RuntimeError("make_dictionary called twice")
        if self._max_depth == 0:
            return None
        self.use_dictionary(None)  # if it was never named
        self._pack.flush_block()
        self._fold_dropped()
        self._note_fresh(self._pack)
        self._dict_made = True
        if walk is not None and self._dict is None and self._walks:
            body = bytearray(DICT_MAGIC)
            write_varint(body, 1)  # a lower bound: readers count what the walk reads
            write_varint(body, DICT_WALK)
            return self.put_tree([walk], bytes(body))
        if not self._fresh:  # nothing new (the same backup again): the same dictionary
            return self._dict[0] if self._dict is not None else None
        members = list(dict.fromkeys(m for m, _n in self._fresh))
        # the dictionary used comes first, unless this session's trees fill the budget
        previous = self._dict is not None and self._fresh_bytes < DICT_BUDGET
        if previous:
            assert self._dict is not None
            members.insert(0, self._dict[0])
        elif self._fresh_bytes < DICT_MIN:
            return None
        body = bytearray(DICT_MAGIC)
        write_varint(body, self._depth + 1)
        write_varint(body, 1 if previous else 0)
        return self.put_tree(members, bytes(body))

    def _known(self, oids: list[ObjectId]) -> set[ObjectId]:
        return self.repo.catalog.has_many(oids)

    @property
    def stats(self) -> WriteStats:
        """Objects and bytes this session adds (the open block is deduplicated first)."""
        if not self._closed:
            self._pack.drop_known()
            self._fold_dropped()
        return self._stats

    def _fold_dropped(self) -> None:
        pack = self._pack
        self._stats.new_objects -= pack.dropped_objects
        self._stats.new_bytes -= pack.dropped_bytes
        pack.dropped_objects = pack.dropped_bytes = 0

    # objects
    def put(self, kind: ObjectType, payload: bytes) -> ObjectId:
        """Store an object unless stored already; whether the repository has it is
        asked per block (see PackWriter), so an object may briefly sit in the
        open block before it is dropped as known."""
        oid = object_id(kind, payload)
        if oid in self._pack.where:
            return oid
        if (
            self._pending.count
            and self._pending.might_have(oid)
            and self._pending.lookup(oid) is not None
        ):
            return oid
        self._pack.add(kind, oid, payload)
        self._stats.new_objects += 1
        self._stats.new_bytes += len(payload)
        if self._deferring and (
            self._pack.size >= DEFER_BYTES or len(self._pack.where) >= MAX_PACK_OBJECTS // 2
        ):
            self.use_dictionary(None)  # too much new to wait for one
        # (a pack may pass pack_size while it waits: it is one open block)
        if not self._deferring and (
            self._pack.size >= self.pack_size or len(self._pack.where) >= MAX_PACK_OBJECTS
        ):
            self._flush_pack()
        return oid

    def put_tree(self, refs: list[ObjectId], body: bytes) -> ObjectId:
        return self.put(ObjectType.TREE, encode_tree(refs, body))

    def has(self, oid: ObjectId) -> bool:
        """Was the object committed before this session?"""
        return self.repo.catalog.has(oid)

    def get(self, oid: ObjectId) -> tuple[ObjectType, bytes]:
        """Read an object, including ones this session has not committed yet."""
        found = self._pack.read(oid, self.repo._reader, self._decoded)
        if found is not None:
            return ObjectType(found[0]), found[1]
        if self._pending.count and self._pending.might_have(oid):
            loc = self._pending.lookup(oid)
            if loc is not None:
                return self.repo.read_at(oid, loc)
        return self.repo.get(oid)

    def _flush_pack(self, remember: bool = True) -> list[Row]:
        """Write the open pack; its entries go to the pending index (or are returned)."""
        if self._pack.empty:
            return []
        self._pack.flush_block()
        self._fold_dropped()
        if self._pack.empty:
            return []
        pack_id, data = self._pack.finish()
        self._note_fresh(self._pack)
        self.repo.backend.write(pack_key(pack_id), data)
        self._packs.append(pack_id)
        self._stats.packs += 1
        self._stats.stored_bytes += len(data)
        placed = self._pack.placed
        rows: list[Row] = []
        if remember:
            self._pending.add(pack_id, placed)
        else:
            rows = [(oid, t, pack_id, bo, bl, o, ln) for t, oid, bo, bl, o, ln in placed]
        self._pack = self._new_pack()
        self._decoded = {}
        self._lock.refresh()
        return rows

    def refresh_lock(self) -> None:
        self._lock.refresh()

    # commit / abort
    def commit(self, snapshot: dict[str, Any] | None = None) -> str | None:
        """Make everything durable and visible; write ``snapshot`` last.

        Returns the snapshot id (or None when only objects were committed).  On
        any failure the session is aborted (see :meth:`abort`) and the lock freed.
        """
        try:
            return self._commit(snapshot)
        except BaseException:
            self.abort()
            raise

    def _commit(self, snapshot: dict[str, Any] | None) -> str | None:
        self.use_dictionary(None)  # if it was never named
        last = self._flush_pack(remember=False)
        pending = itertools.chain(self._pending.rows(), last)
        while True:
            chunk: list[Row] = []
            for entry in pending:
                chunk.append(entry)
                if len(chunk) >= MAX_ENTRIES_PER_FILE:
                    break
            if not chunk:
                break
            idx_id, data = encode_index_rows(chunk)
            self._indexed = True  # from here on, abort must not delete packs
            self.repo.backend.write(index_key(idx_id), data)
            self._stats.stored_bytes += len(data)
            self.repo.catalog.add_index_rows(idx_id.hex(), chunk, commit=False)
        self.repo.catalog.commit()
        snap_id = None
        if snapshot is not None:
            data = json.dumps(snapshot, sort_keys=True, separators=(",", ":")).encode()
            snap_id = object_id(ObjectType.SNAPSHOT, data).hex()
            try:
                row = _snapshot_row(snap_id, snapshot)  # validate before anything is written
            except (KeyError, TypeError, ValueError) as exc:
                self._close()
                raise BadInputError(f"invalid snapshot record: {exc}") from exc
            self.repo.backend.write(snapshot_key(snap_id), data)
            self.repo.catalog.add_snapshot(row)
            self.repo.update_head(str(snapshot["course"]), snap_id, float(snapshot["epoch"]))
        self._close()
        return snap_id

    def abort(self) -> None:
        """Forget this session: delete its packs, unless an index already names them.

        Packs no index names cannot have been used by anyone else.  Once commit
        has written an index file, other writers may dedup against its objects,
        so the packs stay (prune removes them if no snapshot ever uses them).
        """
        if self._closed:
            return
        try:
            if not self._indexed:
                for pack_id in self._packs:
                    self.repo.backend.delete(pack_key(pack_id))
                self.repo.forget_packs(set(self._packs))
        finally:
            self._close()

    def _close(self) -> None:
        self._closed = True
        self._pending.close()
        self._lock.release()

    def __enter__(self) -> WriteSession:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self._closed:
            if exc_type is None:
                self.commit()
            else:
                self.abort()
