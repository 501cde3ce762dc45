"""Reading objects: located through the catalog, read from packs, verified
against their ids, with a reader's cache of decoded blocks and objects.

Part of :class:`~coursevault.store.repository.Repository` (which adds
dictionaries, snapshots and writing on top); kept apart so that what a read
costs and what it may call corrupt are read in one place.  Memory is bounded
by BLOCK_CACHE_BYTES of decoded blocks and as much of learned objects,
whatever the repository's block size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container, Mapping

import blake3
import zstandard

from coursevault.errors import (
    ChecksumMismatchError,
    CorruptionError,
    ObjectMissingError,
    TruncatedError,
)
from coursevault.store.backend import Backend
from coursevault.store.catalog import Catalog
from coursevault.store.diskcache import read_checked
from coursevault.store.ids import TYPES, ObjectId, ObjectType, object_id
from coursevault.store.index import IndexFormatError, decode_index
from coursevault.store.pack import (
    BlockReader,
    Location,
    PackFormatError,
    block_raw_length,
    pack_key,
)

# Decoded blocks (and the objects learned from them) kept by a reader, by
# bytes, so that memory does not grow with a repository's block size.
BLOCK_CACHE_BYTES = 8 * 1024 * 1024


class ObjectReads:
    """Object reads of a repository over ``backend``, located by ``catalog``."""

    backend: Backend
    catalog: Catalog

    def __init__(self) -> None:
        # what this reader keeps (decoded blocks, and as much of learned
        # objects); a reader that walks members once, in order, can keep less
        # (restore --db: 3 MiB, 0.4 s more CPU, 18 MB less on an M course)
        self.cache_bytes = BLOCK_CACHE_BYTES
        # of which decoded blocks (None: as much); objects learned from a
        # block outlive it, so a reader that comes back to objects rather
        # than to blocks keeps one block (restore --db: 2.7 MB less, the
        # same CPU, on an M course)
        self.block_cache_bytes: int | None = None
        # whether a second read from a block learns all of its objects (see
        # get); a reader that comes back to blocks for a few objects each
        # does better reading each at its place (backup --db's night checks
        # stored documents' lengths: 8,200 reads from 150 blocks of an M
        # course, and learning them kept 13 MB and hashed 150 MiB)
        self.learn_blocks = True
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
        self._reader = BlockReader(self._decompressor)

    def _decompressor(self, dict_id: ObjectId) -> zstandard.ZstdDecompressor:
        """The decompressor of a block naming ``dict_id`` (dictionaries.py)."""
        raise CorruptionError(f"no dictionaries here to read {dict_id.hex()}")

    def read_index(self, name: str) -> list[tuple[bytes, Location]]:
        key = f"index/{name}"
        data = read_checked(self.backend, key, lambda d: blake3.blake3(d).hexdigest() == name)
        if blake3.blake3(data).hexdigest() != name:
            raise CorruptionError(f"index file {name} does not match its hash")
        try:
            return list(decode_index(data))
        except IndexFormatError as exc:
            raise CorruptionError(f"index file {name}: {exc}") from exc

    def has(self, oid: ObjectId) -> bool:
        return self.catalog.has(oid)

    def locate(self, oid: ObjectId) -> Location:
        loc = self.catalog.lookup(oid)
        if loc is None:
            raise ObjectMissingError(oid.hex(), "not in any index")
        return loc

    def get(
        self, oid: ObjectId, located: Mapping[ObjectId, Location] | None = None
    ) -> tuple[ObjectType, bytes]:
        """Return (type, payload) of an object, verified against its id
        (located through ``located``, a caller's copy of the index, if given).

        Readers walk trees in about the order they were written, so the
        second read from a block hashes the whole block (its table of
        contents gives each object's slice; the hashes are its ids) and
        keeps its objects: later reads from it need neither a catalog
        lookup nor another hash.  A random read, which rarely comes back to
        its block, hashes only its own object (as does every read while
        ``learn_blocks`` is off).
        """
        hit = self._recent.get(oid)
        if hit is not None:
            return hit
        loc = located.get(oid) if located is not None else None
        if loc is None:
            loc = self.locate(oid)
        if not self.learn_blocks:
            return self.read_at(oid, loc)
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
        while self._recent_bytes > self.cache_bytes and len(self._recent_blocks) > 1:
            old_key, (old, old_size) = self._recent_blocks.popitem(last=False)
            self._recent_bytes -= old_size
            for oid_old in old:
                if owner.get(oid_old) == old_key:
                    del owner[oid_old]
                    recent.pop(oid_old, None)

    def peek(self, oid: ObjectId, loc: Location) -> bytes:
        """An object's bytes at ``loc``, NOT verified against its id: for a
        caller that hashes every object it keeps before anything names it
        (a first sync plans from trees read so, and verifies each as it
        copies it)."""
        raw, _entries = self._block(oid, loc)
        if loc.offset + loc.length > len(raw):
            raise ChecksumMismatchError(oid.hex(), loc.pack.hex(), "its slice runs past its block")
        return raw[loc.offset : loc.offset + loc.length]

    def read_at(self, oid: ObjectId, loc: Location) -> tuple[ObjectType, bytes]:
        raw, _entries = self._block(oid, loc)
        data = raw[loc.offset : loc.offset + loc.length]
        if loc.offset + loc.length <= len(raw) and object_id(loc.type, data) == oid:
            return loc.type, data
        if self._distrust_dictionary(self._read_block(oid, loc)):  # decoded against a bad copy
            self._blocks.pop((loc.pack, loc.block_offset), None)
            raw, _entries = self._block(oid, loc)
            data = raw[loc.offset : loc.offset + loc.length]
        if loc.offset + loc.length > len(raw):
            raise ChecksumMismatchError(oid.hex(), loc.pack.hex(), "its slice runs past its block")
        if object_id(loc.type, data) != oid:
            raise ChecksumMismatchError(oid.hex(), loc.pack.hex())
        return loc.type, data

    def _distrust_dictionary(self, block: bytes) -> bool:
        """Whether the dictionary ``block`` names came from a local copy,
        now dropped, so that decoding it again reads the repository's
        (DictionaryReads: its file cache of walk dictionaries)."""
        return False

    def _read_block(self, oid: ObjectId, loc: Location) -> bytes:
        """The stored bytes of a block.  A pack shorter than its index says is
        damage (corrupt); a pack the backend cannot read now stays a
        ``BackendError``: a timeout must not read as a damaged repository."""
        try:
            return self.backend.read(pack_key(loc.pack), loc.block_offset, loc.block_length)
        except FileNotFoundError:
            raise ObjectMissingError(oid.hex(), f"its pack {loc.pack.hex()} is missing") from None
        except TruncatedError as exc:
            raise CorruptionError(f"pack {loc.pack.hex()} is truncated: {exc}") from exc

    def _block(self, oid: ObjectId, loc: Location) -> tuple[bytes, list[tuple[int, int, int]]]:
        """(raw payload, table of contents) of the block at ``loc``, decoded once
        for the last ``cache_bytes`` of blocks."""
        key = (loc.pack, loc.block_offset)
        cached = self._blocks.get(key)
        if cached is not None:
            self._blocks.move_to_end(key)
            return cached
        block = self._read_block(oid, loc)
        keep = self.cache_bytes if self.block_cache_bytes is None else self.block_cache_bytes
        # room made before decoding, not after: a reader that keeps one
        # block would otherwise hold two at its peak (restore --db: 1 MiB)
        self._evict_blocks(keep - block_raw_length(block), 0)
        try:
            decoded = self._reader.decode(block)
        except PackFormatError as exc:
            if not self._distrust_dictionary(block):
                raise CorruptionError(
                    f"pack {loc.pack.hex()} block at {loc.block_offset} is corrupt: {exc}"
                ) from exc
            try:
                decoded = self._reader.decode(block)
            except PackFormatError as again:
                raise CorruptionError(
                    f"pack {loc.pack.hex()} block at {loc.block_offset} is corrupt: {again}"
                ) from again
        self._decoded(key, block)
        self._blocks[key] = decoded
        self._blocks_bytes += len(decoded[0])
        self._evict_blocks(keep, 1)
        return decoded

    def _evict_blocks(self, keep: int, least: int) -> None:
        """Drop the oldest decoded blocks until they take ``keep`` bytes or
        ``least`` are left."""
        while self._blocks_bytes > keep and len(self._blocks) > least:
            self._blocks_bytes -= len(self._blocks.popitem(last=False)[1][0])

    def _decoded(self, key: tuple[bytes, int], block: bytes) -> None:
        """Told of each block decoded, as (pack, offset) and its stored bytes."""

    def decoded_blocks(self) -> set[tuple[bytes, int]]:
        """The (pack, offset) of every block held decoded now."""
        return set(self._blocks)

    def drop_decoded_blocks(self, keep: Container[tuple[bytes, int]] = ()) -> None:
        """Let the decoded blocks go but those in ``keep`` (objects learned
        from them stay)."""
        for key in [k for k in self._blocks if k not in keep]:
            self._blocks_bytes -= len(self._blocks.pop(key)[0])

    def forget_cached(self) -> None:
        """Drop every decoded block and object this reader holds."""
        self._blocks.clear()
        self._blocks_bytes = 0
        self._recent.clear()
        self._recent_owner.clear()
        self._recent_blocks.clear()
        self._recent_bytes = 0
        self._seen_blocks.clear()

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
