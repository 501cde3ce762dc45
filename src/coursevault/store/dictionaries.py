"""Dictionaries (docs/format.md, "Dictionaries"): their objects, written and read.

A dictionary object names an earlier dictionary and objects (a list
dictionary) or one tree whose walk gives the content (a walk dictionary);
their bytes are the raw-content zstd dictionary of the blocks that name it.
Writing (:func:`dictionary_body`, :func:`dictionary_params`, used by the
write session) and reading (:class:`DictionaryReads`, part of
:class:`~coursevault.store.repository.Repository`) live together so the
encoding is in one module.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Container, Iterator
from pathlib import Path
from typing import NamedTuple

import zstandard

from coursevault.errors import CorruptionError, ObjectMissingError, TruncatedError
from coursevault.store.dictcache import DictionaryCache
from coursevault.store.ids import ObjectId, ObjectType
from coursevault.store.objects import ObjectReads
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
from coursevault.store.treecodec import decode_tree, read_varint, write_varint

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
# dictionary contents kept (a list's is 1 MiB at most, a walk's 4 MiB): a
# chain read in order needs only its last link's.  Each is kept once, as the
# zstd dictionary (which copies its content) that its decompressor and a
# writer's compressor share: a walk was held three times over (its bytes,
# and a dictionary each for reading and for writing), 12 MiB of a night.
DICT_CONTENTS = 4
DICT_WALK = 2  # the flags of a walk dictionary (format version 3)


def dictionary_body(depth: int, flags: int) -> bytes:
    """The body of a dictionary object: ``"cvdict" varint depth varint flags``
    (flags 0: a list, 1: a list continuing the dictionary its first ref
    names, DICT_WALK: a walk of its one ref)."""
    body = bytearray(DICT_MAGIC)
    write_varint(body, depth)
    write_varint(body, flags)
    return bytes(body)


def parse_dictionary(kind: ObjectType, payload: bytes) -> tuple[list[ObjectId], int, int]:
    """(refs, depth, flags) of a dictionary object (:meth:`DictionaryReads.
    _load_dictionary` says what they mean); ``ValueError`` saying what is
    wrong with one that is not well formed."""
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
    return list(refs), depth, flags


def zstd_dictionary(content: bytes) -> zstandard.ZstdCompressionDict:
    """The raw-content zstd dictionary of ``content`` (a copy of it)."""
    return zstandard.ZstdCompressionDict(content, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def dictionary_params(level: int) -> zstandard.ZstdCompressionParameters:
    """Compression parameters for blocks with a dictionary: the level's, with a
    window and hash tables big enough to reach into all of a walk's content
    (which readers need not know: any zstd decoder takes the frames)."""
    base = zstandard.ZstdCompressionParameters.from_level(level)
    bigger = {k: max(v, getattr(base, k)) for k, v in DICT_PARAMS.items()}
    return zstandard.ZstdCompressionParameters.from_level(level, **bigger)


class _Loaded(NamedTuple):
    """A dictionary, built from its object and what it reads."""

    depth: int
    content: bytes
    previous: ObjectId | None  # the list dictionary it continues
    sources: list[ObjectId]  # the objects its content is read from
    walk: bool
    # a walk that met no id the index lacks: what its writer read, so it
    # may be kept on disk (one that met some reads otherwise once they are
    # indexed again: kept, it made export fail where check passed)
    complete: bool = True


class DictionaryReads(ObjectReads):
    """Reading blocks that name dictionaries: resolving chains, caching the
    last decompressors and contents (and walk contents on local disk)."""

    def __init__(self, cache_folder: Path | None) -> None:
        super().__init__()
        self._disk_dicts = DictionaryCache(cache_folder / "dictionaries") if cache_folder else None
        self._dicts: OrderedDict[ObjectId, zstandard.ZstdDecompressor] = OrderedDict()
        self._dict_content: OrderedDict[ObjectId, tuple[int, zstandard.ZstdCompressionDict]] = (
            OrderedDict()
        )
        self._resolving: set[ObjectId] = set()
        self._block_dicts: dict[tuple[bytes, int], ObjectId | None] = {}
        # Where objects this process already read and hashed are (None: not
        # one of those): a caller that verifies every object it walks
        # (check) saves reading a dictionary's members through the catalog
        # and hashing them again -- they are mostly the trees its walk just
        # read, and each chain link would hash them once more.
        self.verified: Callable[[ObjectId], Location | None] | None = None
        self._from_disk: set[ObjectId] = set()  # contents read from the file cache

    def notice(self, message: str) -> None:
        """Something the user should hear of (the repository says it)."""

    def forget_cached(self) -> None:
        """Drop every decoded block, object and dictionary this reader holds
        (``repair index`` reads blocks again once it has found more objects)."""
        super().forget_cached()
        self._dicts.clear()
        self._dict_content.clear()

    def forget_dictionary(self, dict_id: ObjectId) -> None:
        """Drop what this reader keeps of ``dict_id`` (a writer done with the
        dictionary it shared: its compression tables live in that zstd
        dictionary, and a site's run keeps the caches across courses)."""
        self._dicts.pop(dict_id, None)
        self._dict_content.pop(dict_id, None)

    def keep_walk_content(self, dict_id: ObjectId, depth: int, content: bytes) -> None:
        """Keep in the local file cache a walk dictionary's content that was
        read elsewhere and is known to read the same here (``sync``: the
        source's walk met no id its index lacked, and every tree it read is
        copied).  Used, as every entry, only while the object is indexed."""
        if self._disk_dicts is not None:
            self._disk_dicts.put(dict_id, depth, content)

    def disable_disk_dictionaries(self) -> None:
        """Neither read nor keep dictionary contents in the local file cache
        (while objects are missing from the catalog, a walk dictionary read
        now could differ from what its writer compressed against)."""
        self._disk_dicts = None

    @property
    def block_reader(self) -> BlockReader:
        """A block decoder that resolves dictionaries through this repository."""
        return self._reader

    def dictionary(self, dict_id: ObjectId) -> tuple[int, bytes]:
        """(depth, content) of a dictionary object (docs/format.md, "Dictionaries").

        ``depth`` is how many dictionaries deep reading a block that names it
        can go: what the object says for a list dictionary, and for a walk
        dictionary what the walk found (its trees may sit in any earlier
        block, so only reading them tells).  The content is a copy, made
        for each call (:meth:`zstd_dictionary`'s is kept).
        """
        depth, zdict = self.zstd_dictionary(dict_id)
        return depth, zdict.as_bytes()

    def zstd_dictionary(self, dict_id: ObjectId) -> tuple[int, zstandard.ZstdCompressionDict]:
        """(depth, the zstd dictionary of the content) of a dictionary object,
        as :meth:`dictionary` says; kept, and shared by whoever asks."""
        cached = self._dict_content.get(dict_id)
        if cached is not None:
            self._dict_content.move_to_end(dict_id)
            return cached
        disk = self._disk_dicts
        # Only while the dictionary object is indexed: a copy kept on this
        # machine must not make a block readable here that the repository
        # itself can no longer read (check and prune would disagree with export).
        found = disk.get(dict_id) if disk is not None else None
        if found is not None and not self.catalog.has(dict_id):
            found = None
        if found is not None:
            depth, content = found
            self._from_disk.add(dict_id)
        else:
            loaded = self._load_dictionary(dict_id)
            depth, content = loaded.depth, loaded.content
            # a list is quick to rebuild; a walk is not
            if loaded.walk and loaded.complete and disk is not None:
                disk.put(dict_id, depth, content)
        return self._keep_content(dict_id, depth, content)

    def _keep_content(
        self, dict_id: ObjectId, depth: int, content: bytes
    ) -> tuple[int, zstandard.ZstdCompressionDict]:
        kept = self._dict_content[dict_id] = (depth, zstd_dictionary(content))
        self._dict_content.move_to_end(dict_id)
        if len(self._dict_content) > DICT_CONTENTS:
            self._dict_content.popitem(last=False)
        return kept

    def dictionary_chain(
        self, dict_id: ObjectId, known: Container[ObjectId] = ()
    ) -> Iterator[tuple[ObjectId, list[ObjectId]]]:
        """Each dictionary of a chain -- this one, then the list dictionaries
        it continues -- with the objects its content is read from, for prune
        and check: a dictionary needs those objects kept, not what they name.
        The chain ends before a link in ``known`` (the caller's, done
        already), unread: walked oldest link first, each link is read once.
        What a link's content is stays cached, so reading the blocks that
        name it does not build it again."""
        while True:
            loaded = self._load_dictionary(dict_id)
            self._keep_content(dict_id, loaded.depth, loaded.content)
            yield dict_id, loaded.sources
            if loaded.previous is None or loaded.previous in known:
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
            kind, payload = self._get_once(dict_id)
            try:
                refs, depth, flags = parse_dictionary(kind, payload)
            except ValueError as exc:
                raise CorruptionError(f"dictionary {dict_id.hex()}: {exc}") from None
            if flags == DICT_WALK:
                unindexed: list[ObjectId] = []
                walk_depth, walked, sources = self._walk_trees(refs[0], unindexed)
                own = self.block_depth(self.locate(dict_id))
                content = bytes(walked)
                del walked  # not held beside the content and its dictionary (4 MiB each)
                return _Loaded(1 + max(walk_depth, own), content, None, sources, True,
                               complete=not unindexed)
            members = [self._get_once(m)[1] for m in refs[flags:]]
            # the last DICT_BUDGET bytes of the previous content and the
            # members, joined once (not 2 MiB joined to keep the last 1)
            room = DICT_BUDGET - sum(map(len, members))
            head: list[bytes | memoryview] = []
            if flags:
                before = self.dictionary(refs[0])[1]  # read even if none of it fits
                if room > 0:
                    head.append(memoryview(before)[max(0, len(before) - room) :])
            content = b"".join([*head, *members])
            if len(content) > DICT_BUDGET:
                content = content[-DICT_BUDGET:]
            previous = refs[0] if flags else None
            return _Loaded(depth, content, previous, list(refs[flags:]), False)
        finally:
            self._resolving.discard(dict_id)

    def _get_once(self, oid: ObjectId) -> tuple[ObjectType, bytes]:
        """:meth:`get`, unless ``verified`` knows where ``oid`` was read and
        hashed already: then its bytes there, not hashed again."""
        loc = self.verified(oid) if self.verified is not None else None
        if loc is None:
            return self.get(oid)
        return loc.type, self.peek(oid, loc)

    def read_once_at(self, oid: ObjectId, loc: Location) -> bytes:
        """:meth:`read_at`'s bytes, unless ``verified`` knows where ``oid``
        was read and hashed already (a walk dictionary reads a snapshot's
        upper trees, which check's walk has read)."""
        at = self.verified(oid) if self.verified is not None else None
        return self.read_at(oid, loc)[1] if at is None else self.peek(oid, at)

    def _distrust_dictionary(self, block: bytes) -> bool:
        """A block that does not decode, or decodes to bytes that do not
        hash to their ids, against a walk dictionary read from the file
        cache: that copy is dropped (and said), to be read again from the
        repository.  A copy kept by an older version while an index file
        was missing made every export of the course fail while check
        passed, until the cache was deleted by hand."""
        try:
            dict_id = block_dictionary(block)
        except PackFormatError:
            return False
        if dict_id is None or dict_id not in self._from_disk:
            return False
        self._from_disk.discard(dict_id)
        self._dicts.pop(dict_id, None)
        self._dict_content.pop(dict_id, None)
        if self._disk_dicts is not None:
            self._disk_dicts.drop(dict_id)
        self.notice(f"dictionary {dict_id.hex()}: the local cache's copy did not read the "
                    "repository's blocks and is dropped")
        return True

    def _walk_trees(
        self, root: ObjectId, unindexed: list[ObjectId] | None = None
    ) -> tuple[int, bytearray, list[ObjectId]]:
        """A walk dictionary's content (``reach.walk_tail_first``).

        The blocks it decoded are let go (those held before stay): the walk
        reads a few trees from each of many blocks of the snapshot before,
        which the night then asks nothing of, and they filled the cache of
        decoded blocks (8 MiB) for the rest of the run -- on the demo M
        course, at the peak of the first night after a full backup, where a
        small course's walk reads six blocks (docs/benchmarks.md 9b)."""
        held = self.decoded_blocks()  # the caller's: they stay
        try:
            return walk_tail_first(self, root, WALK_BUDGET, DICT_MEMBER_MAX, unindexed)
        finally:
            self.drop_decoded_blocks(keep=held)

    def _decompressor(self, dict_id: ObjectId) -> zstandard.ZstdDecompressor:
        dctx = self._dicts.get(dict_id)
        if dctx is not None:
            self._dicts.move_to_end(dict_id)
            return dctx
        _depth, zdict = self.zstd_dictionary(dict_id)
        return self.remember_dictionary(dict_id, zdict)

    def remember_dictionary(
        self, dict_id: ObjectId, zdict: zstandard.ZstdCompressionDict
    ) -> zstandard.ZstdDecompressor:
        """Keep a decompressor for ``dict_id`` (a writer registers its own, whose
        object is not indexed yet, so that it can read back what it wrote)."""
        dctx = zstandard.ZstdDecompressor(dict_data=zdict)
        self._dicts[dict_id] = dctx
        if len(self._dicts) > DICT_CACHE:
            self._dicts.popitem(last=False)
        return dctx

    def _decoded(self, key: tuple[bytes, int], block: bytes) -> None:
        # what its header says, kept as block_dictionary would: a check asks
        # it of every block, most of which its walks decoded already
        if len(self._block_dicts) > 100_000:
            self._block_dicts.clear()
        self._block_dicts[key] = block_dictionary(block)

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
        except (TruncatedError, PackFormatError) as exc:  # damage; a failing read stays one
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
        return self.zstd_dictionary(dict_id)[0]
