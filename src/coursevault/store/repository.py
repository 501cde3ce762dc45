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

import json
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import blake3
import zstandard

from coursevault.errors import (
    BackendError,
    BadInputError,
    CatalogDamagedError,
    ChecksumMismatchError,
    CorruptionError,
    FormatVersionError,
    NoRepositoryError,
    ObjectMissingError,
    RepositoryExistsError,
)
from coursevault.store.backend import Backend
from coursevault.store.catalog import Catalog, SnapshotRow
from coursevault.store.catalog_sync import open_catalog, reset_damaged, sqlite_path, sync_catalog
from coursevault.store.dictcache import DictionaryCache
from coursevault.store.ids import TYPES, ObjectId, ObjectType, object_id
from coursevault.store.index import (
    IndexFormatError,
    decode_index,
)
from coursevault.store.locks import Lock
from coursevault.store.pack import (
    BLOCK_HEAD,
    DICT_REF,
    BlockReader,
    Location,
    PackFormatError,
    block_dictionary,
    pack_key,
)
from coursevault.store.reach import walk_tail_first
from coursevault.store.treecodec import (
    decode_tree,
    read_varint,
)

if TYPE_CHECKING:
    from coursevault.store.series import SnapshotDraft
    from coursevault.store.session import WriteSession

# version 2 adds dictionary blocks (codec 2), version 3 walk dictionaries
FORMAT_VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
# 1 MiB blocks: on the generated 50 MB course night 1 stores 11.8 MB instead
# of 13.7 MB at 128 KiB (zstd finds more of a forum's repeats in a block); a
# night's new objects fill less than one block either way.  Reading one
# object decodes its block, ~1 ms.
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
# A pack of tiny records (quiz steps, log lines) reaches 16 MiB only after
# hundreds of thousands of objects; the writer's map of them must stay small.
MAX_PACK_OBJECTS = 32_768
MAX_PACK_SIZE = 1024 * 1024 * 1024


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
        self.notices: list[str] = []
        self._disk_dicts = DictionaryCache(cache_folder / "dictionaries") if cache_folder else None
        self._blocks: OrderedDict[tuple[bytes, int], tuple[bytes, list[tuple[int, int, int]]]] = (
            OrderedDict()
        )
        # Verified objects of the blocks a reader came back to (see get).
        self._recent: dict[ObjectId, tuple[ObjectType, bytes]] = {}
        self._recent_owner: dict[ObjectId, tuple[bytes, int]] = {}  # the block that holds it
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
        # 0 wrote a pack per object (946 for a 6 MB course); a writer holds a
        # whole pack in memory, so a huge one costs that much memory.
        if not MIN_BLOCK_SIZE <= pack_size <= MAX_PACK_SIZE:
            raise BadInputError(f"pack size must be 1 KiB to {MAX_PACK_SIZE // 2**20} MiB")
        if not 1 <= level <= 22:
            raise BadInputError("zstd level must be 1-22")
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
        notices: list[str] = []
        for attempt in (1, 2):
            catalog = open_catalog(catalog_url, notices.append)
            repo = cls(backend, config, catalog, folder)
            repo.notices = notices
            try:
                repo._adopt_catalog(sync)
                return repo
            except CatalogDamagedError as exc:
                # damage further in than open_catalog reads: start afresh once
                catalog.close()
                path = sqlite_path(catalog_url)
                if path is None or attempt == 2:
                    raise
                reset_damaged(path, exc, notices.append)
        raise AssertionError("unreachable")

    def _adopt_catalog(self, sync: bool) -> None:
        """Claim a new catalog for this repository, or check it is this one's."""
        known = self.catalog.get_meta("repository")
        if known is None:
            self.catalog.set_meta("repository", self.id)
        elif known != self.id:
            self.catalog.close()
            raise CorruptionError(
                f"catalog {self.catalog.url} belongs to repository {known}, not {self.id}"
            )
        if sync:
            self.sync_catalog()

    def notice(self, message: str) -> None:
        """Record something the user should hear of that does not stop the
        command (a stray file, a damaged index file skipped), once."""
        if message not in self.notices:
            self.notices.append(message)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- locks ------------------------------------------------------------------------
    # How long lock() waits for a conflicting lock (math.inf: no limit); the API
    # sets it for the commands given --wait.
    lock_wait: float = 0.0

    def lock(self, *, exclusive: bool, operation: str) -> Lock:
        """A shared or exclusive lock, waited for up to ``lock_wait`` seconds.
        After a wait the catalog is synced again (a prune may have moved
        objects meanwhile).  Holding the exclusive one, no writer is half-way
        through a commit: a snapshot whose writer died after moving its head
        is written now (``series.publish_all``), before prune or forget decide
        what snapshots there are."""
        held = Lock(self.backend, exclusive, operation).acquire(self.lock_wait)
        try:
            if held.waited:
                self.sync_catalog()
            if exclusive:
                from coursevault.store.series import publish_all

                publish_all(self)
        except BaseException:
            held.release()
            raise
        return held

    # -- catalog sync -----------------------------------------------------------------
    def sync_catalog(self) -> list[str]:
        """Bring the catalog up to date with the repository's index and snapshot
        files; a damaged index file is skipped with a notice, and its name
        returned (catalog_sync.py)."""
        return sync_catalog(self)

    def rebuild_catalog(self) -> dict[str, Any]:
        """Drop the catalog's contents and recreate them from the repository alone.

        A damaged SQLite catalog is deleted and created anew; index files
        that cannot be read are skipped and counted (``repair index``
        rebuilds them from the packs)."""
        try:
            self.catalog.clear_objects()
            self.catalog.clear_snapshots()
        except CatalogDamagedError as exc:
            path = sqlite_path(self.catalog.url)
            if path is None:
                raise
            self.catalog.close()
            reset_damaged(path, exc, self.notice)
            self.catalog = Catalog(self.catalog.url)
            self.catalog.set_meta("repository", self.id)
        damaged = self.sync_catalog()
        return {
            "index_files": len(self.catalog.index_files()),
            "objects": self.catalog.count_objects(),
            "snapshots": len(self.catalog.snapshot_ids()),
            "damaged_index_files": damaged,
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
        if hit is None:
            # Not learned from its block: either it does not hash to its id
            # there (read_at says so) or the cache lost it.  Only a read at
            # its location may call an object corrupt, never the cache.
            return self.read_at(oid, loc)
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
        # Concurrent writers can store one object in two blocks: it belongs to
        # the block that learned it last (the last of them to be evicted), so
        # evicting an older block leaves it readable.
        owner = self._recent_owner
        for found in learned:
            owner[found] = key
        while self._recent_bytes > BLOCK_CACHE_BYTES and len(self._recent_blocks) > 1:
            old_key, (old, old_size) = self._recent_blocks.popitem(last=False)
            self._recent_bytes -= old_size
            for oid_old in old:
                if owner.get(oid_old) == old_key:
                    del owner[oid_old]
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

    def forget_cached(self) -> None:
        """Drop every decoded block, object and dictionary this reader holds
        (``repair index`` reads blocks again once it has found more objects)."""
        self._blocks.clear()
        self._blocks_bytes = 0
        self._recent.clear()
        self._recent_owner.clear()
        self._recent_blocks.clear()
        self._recent_bytes = 0
        self._seen_blocks.clear()
        self._dicts.clear()
        self._dict_content.clear()

    def disable_disk_dictionaries(self) -> None:
        """Neither read nor keep dictionary contents in the local file cache
        (while objects are missing from the catalog, a walk dictionary read
        now could differ from what its writer compressed against)."""
        self._disk_dicts = None

    def forget_packs(self, packs: set[bytes]) -> None:
        """Drop cached blocks and objects of packs that were deleted."""
        for key in [k for k in self._blocks if k[0] in packs]:
            self._blocks_bytes -= len(self._blocks.pop(key)[0])
        for key in [k for k in self._recent_blocks if k[0] in packs]:
            learned, size = self._recent_blocks.pop(key)
            self._recent_bytes -= size
            for oid in learned:
                if self._recent_owner.get(oid) == key:
                    del self._recent_owner[oid]
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
        # Only while the dictionary object is indexed: a copy kept on this
        # machine must not make a block readable here that the repository
        # itself can no longer read (check and prune would disagree with export).
        found = disk.get(dict_id) if disk is not None and self.catalog.has(dict_id) else None
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
        """A walk dictionary's content (``reach.walk_tail_first``)."""
        return walk_tail_first(self, root, WALK_BUDGET, DICT_MEMBER_MAX)

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
        """Snapshots in history order (``series.history_order``): by time,
        an archive ingested again after the one it repeats."""
        from coursevault.store.series import history_order

        return history_order(self.catalog.snapshots(course))

    def commit_snapshot(self, draft: SnapshotDraft, lock: Lock) -> str:
        """Write a snapshot whose objects are indexed, choosing its parent and
        moving its course's head under compare-and-swap, for the writer
        holding ``lock`` (``store/series.py``)."""
        from coursevault.store.series import record_snapshot

        return record_snapshot(self, draft, lock.key)

    def delete_snapshot(self, snap_id: str) -> None:
        """Delete a snapshot (under the exclusive lock); its course's head ref
        stops naming it."""
        from coursevault.store.series import drop_from_head

        try:
            courses = [str(self.read_snapshot(snap_id)["course"])]
        except (CorruptionError, ObjectMissingError):  # look in the catalog, then
            courses = [r.course for r in self.catalog.snapshots() if r.id == snap_id]
            if not courses:  # a damaged record no catalog read: any head may hold it
                courses = [k.split("/", 2)[2] for k, _size in self.backend.list("refs/heads/")]
        self.backend.delete(snapshot_key(snap_id))
        self.catalog.remove_snapshot(snap_id)
        for course in courses:
            drop_from_head(self, course, snap_id)

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
        from coursevault.store.session import WriteSession  # it builds on this module

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


def snapshot_row(snap_id: str, record: dict[str, Any]) -> SnapshotRow:
    return SnapshotRow(
        snap_id,
        str(record["course"]),
        str(record.get("time", "")),
        float(record.get("epoch", 0.0)),
        str(record["root"]),
        record,
    )
