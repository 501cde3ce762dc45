"""Pack files: many objects in few files, compressed in blocks.

Layout (all integers little-endian; see docs/format.md)::

    pack    = header block*
    header  = "CVPK" u8 version(=1, or 2 if it may hold codec-2 blocks) u8[3] zero
    block   = "B" u8 codec u32 stored_len u32 raw_len u32 n
              [id[32] dictionary]            (codec 2 only)
              n * (u8 type, u32 offset, u32 length)
              payload[stored_len]

A block's payload is the concatenation of its objects' bytes, compressed as one
zstd frame (codec 1) or stored as is (codec 0, for data that does not shrink).
Codec 2 is a zstd frame compressed against a raw-content dictionary: the bytes
of the objects a *dictionary object* names (see ``Repository.dictionary``).  A
night's new trees resemble the previous nights' new trees far more than
anything else (the same records with a field changed, the same lists with one
id changed): compressed against them, a night stores 20-32 % less
(docs/benchmarks.md).  The dictionary is named by id, not copied, so it costs
one small object.
Small objects share a block, so a 1 KB XML record is compressed together with
its neighbours -- record-by-record compression loses half the ratio on XML
(benchmarks/compression.py) -- while reading one object costs one block.

Each block carries its own table of contents (type, offset, length), so a
pack is self-describing: hashing each object gives its id, so the index can be
rebuilt from packs alone.  Ids are not repeated in the table -- 32 bytes an
object is as much as a compressed XML record weighs.
"""

from __future__ import annotations

import re
import struct
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

import zstandard

from coursevault.store.ids import ObjectId, ObjectType
from coursevault.store.spool import Spool

if TYPE_CHECKING:
    from coursevault.store.backend import Backend

PACK_MAGIC = b"CVPK"
PACK_VERSION = 1
PACK_VERSION_DICT = 2  # a pack that may hold codec-2 (dictionary) blocks
PACK_VERSIONS = (PACK_VERSION, PACK_VERSION_DICT)
PACK_HEADER = PACK_MAGIC + bytes([PACK_VERSION, 0, 0, 0])
BLOCK_HEAD = struct.Struct("<cBIII")  # "B", codec, stored_len, raw_len, n
ENTRY = struct.Struct("<BII")  # type, offset, length

CODEC_RAW = 0
CODEC_ZSTD = 1
CODEC_ZSTD_DICT = 2
# A pack of tiny records (quiz steps, log lines) reaches 16 MiB only after
# hundreds of thousands of objects; the writer's map of them must stay small.
MAX_PACK_OBJECTS = 32_768
DICT_REF = 32  # the dictionary id after a codec-2 block's header

TREE_TYPE = int(ObjectType.TREE)
MAX_BLOCK_RAW = 1 << 31  # u32 fields; objects larger than this are chunked above us


# Objects this big (file content; the chunker's pieces average 64 KiB) get a
# block of their own, compressed faster or not at all, whatever the block size.
LARGE_OBJECT = 128 * 1024


class PackFormatError(Exception):
    """A pack's bytes do not follow the layout (translated by the repository)."""


class Location(NamedTuple):
    """Where an object lives: its block in a pack and its slice of the raw block.

    A NamedTuple: millions are made while committing and reading indexes."""

    type: ObjectType
    pack: bytes
    block_offset: int
    block_length: int
    offset: int
    length: int


def pack_key(pack_id: bytes) -> str:
    h = pack_id.hex()
    return f"packs/{h[:2]}/{h}"


_PACK_KEY = re.compile(r"packs/([0-9a-f]{2})/(\1[0-9a-f]{62})")


def pack_files(
    backend: Backend, on_stray: Callable[[str], None] = lambda _key: None
) -> Iterator[tuple[str, int]]:
    """(pack id in hex, size) of every pack file, as listed.  Any other file
    under ``packs/`` -- a name that is not 64 lowercase hex digits, or under
    another ``<hh>`` -- is not part of the repository (docs/format.md §1):
    ``on_stray(key)`` is told, and no command reads or deletes it.  Check
    counted such a file as a pack, and prune and check --read-data failed
    on it with an internal error."""
    for key, size in backend.list("packs/"):
        found = _PACK_KEY.fullmatch(key)
        if found is None:
            on_stray(key)
        else:
            yield found[2], size


class PackWriter:
    """Accumulates objects into blocks and blocks into one pack.

    The caller decides when a pack is full (``size``) and writes ``finish()``'s
    bytes through the backend; the pack id is the blake3 hash of those bytes.
    Memory is bounded by the pack target size plus one block, or, with
    ``spill_at``, by that many bytes plus one block: finished blocks past it
    go to a temporary file (store/spool.py).
    """

    def __init__(
        self,
        block_target: int,
        level: int,
        known: Callable[[list[ObjectId]], set[ObjectId]] | None = None,
        recent_trees: int = 128,
        spill_at: int | None = None,
    ) -> None:
        self.block_target = block_target
        self._large = min(block_target, LARGE_OBJECT)  # see _seal
        # Deduplication against the repository is asked once per block, not once
        # per object: one batched catalog query instead of a hundred.
        self._known = known
        self.dropped_objects = 0  # objects added but found already stored
        self.dropped_bytes = 0
        self._checked = 0  # open-block entries already asked about
        self._cctx = zstandard.ZstdCompressor(level=level)
        # a block holding one large object (file content) is compressed faster:
        # level 1 keeps ~90% of level 3's ratio at 2-3x the speed
        self._fast = zstandard.ZstdCompressor(level=min(level, 1))
        self._dict: tuple[ObjectId, zstandard.ZstdCompressor] | None = None
        # the finished blocks: in memory, or past ``spill_at`` bytes in a
        # temporary file (store/spool.py)
        self._buf = Spool(PACK_HEADER, spill_at)
        self._raw = bytearray()
        # Where each object is, one slot per object in the order added: the id
        # maps to its slot, the slot's fields sit in flat arrays.  A dict of
        # 5-tuples took 4.9 MiB at 32,768 objects beside their ids -- a tuple
        # and two large ints an object -- at a big course's peak; 3.2 as slots
        # (docs/benchmarks.md 9b).
        # The open block is the slots from ``_open`` on; its block fields are
        # -1 and 0 until it is sealed.
        self.where: dict[ObjectId, int] = {}
        self._ids: list[ObjectId] = []
        self._kinds = bytearray()
        self._boff = array("q")
        self._blen = array("I")  # u32 as in the format (MAX_BLOCK_RAW)
        self._off = array("I")
        self._len = array("I")
        self._open = 0
        # (id, length) of the last trees sealed: what a dictionary for the next
        # session names.  Trees of ids count too: a list chunk or a group with
        # one child changed is its previous version with one id changed, so
        # against that version its ids compress.  Bounded, as a pack may hold
        # 32,768 objects.
        self.recent_trees: deque[tuple[ObjectId, int]] = deque(maxlen=recent_trees)

    def detach(self) -> None:
        """Forget the dedup callback: it is the owning session's bound
        method, a cycle that kept each closed session -- its Bloom filter
        and compression tables, 8 MB and more -- until Python's next full
        collection (ten sessions at once in a site's ``backup --all``)."""
        self._known = None

    @property
    def size(self) -> int:
        return self._buf.size + len(self._raw)

    def set_dictionary(self, dict_id: ObjectId, cctx: zstandard.ZstdCompressor) -> None:
        """Compress blocks sealed from now on with ``cctx`` (which holds the
        content of dictionary object ``dict_id``), naming ``dict_id`` in them."""
        self._dict = (dict_id, cctx)
        self._buf.patch(4, bytes([PACK_VERSION_DICT]))  # readers of version 1 refuse it whole

    @property
    def empty(self) -> bool:
        return not self._ids

    @property
    def objects(self) -> int:
        """Objects in this pack so far (those found already stored dropped)."""
        return len(self._ids)

    def add(self, kind: ObjectType, oid: ObjectId, payload: bytes | memoryview) -> None:
        """Add an object (once: an id this pack holds already is not added
        again -- its slot would be listed twice)."""
        if oid in self.where:
            return
        n = len(payload)
        large = n >= self._large
        if large and self._known is not None and self._known([oid]):
            # stored already: it must not seal the open block early (a night's
            # unchanged files would leave its few new objects in small blocks)
            self.dropped_objects += 1
            self.dropped_bytes += n
            return
        at = len(self._raw)
        if at and (large or at + n > self.block_target):
            self.drop_known()
            at = len(self._raw)
            if at and (large or at + n > self.block_target):
                self._seal()
                at = 0
        self._slot(int(kind), oid, at, n)
        self._raw += payload
        if large or at + n >= self.block_target:
            self.drop_known()
            if self._raw and (large or len(self._raw) >= self.block_target):
                self._seal()

    def _slot(self, t: int, oid: ObjectId, off: int, ln: int) -> None:
        """A new slot in the open block."""
        self.where[oid] = len(self._ids)
        self._ids.append(oid)
        self._kinds.append(t)
        self._boff.append(-1)
        self._blen.append(0)
        self._off.append(off)
        self._len.append(ln)

    def flush_block(self) -> None:
        """Seal the open block now (its known objects dropped first)."""
        self.drop_known()
        self._seal()

    def _seal(self) -> None:
        first, end = self._open, len(self._ids)
        if first == end:
            return
        raw = self._raw  # sealed as it is: a copy would double a large file at peak
        stored: bytes | bytearray
        large = end - first == 1 and len(raw) >= self._large
        dict_ref = b""
        if large and _incompressible(raw, self._fast):
            stored, codec = raw, CODEC_RAW
        elif not large and self._dict is not None:  # file contents gain nothing from it
            # A dictionary of other content can cost more (longer offsets) than it
            # saves: keep whichever is smaller.  Only blocks of new objects get
            # here, so compressing twice costs little.
            dict_ref, cctx = self._dict
            stored, codec = cctx.compress(raw), CODEC_ZSTD_DICT
            plain = self._cctx.compress(raw)
            if len(plain) <= len(stored):
                stored, codec, dict_ref = plain, CODEC_ZSTD, b""
        else:
            stored = (self._fast if large else self._cctx).compress(raw)
            codec = CODEC_ZSTD
        if len(stored) >= len(raw):
            stored, codec, dict_ref = raw, CODEC_RAW, b""
        start = self._buf.size
        head = bytearray(BLOCK_HEAD.pack(b"B", codec, len(stored), len(raw), end - first))
        head += dict_ref
        kinds, offs, lens = self._kinds, self._off, self._len
        for s in range(first, end):
            head += ENTRY.pack(kinds[s], offs[s], lens[s])
        self._buf.append(head)
        self._buf.append(stored)
        block_len = self._buf.size - start
        self._boff[first:end] = array("q", [start]) * (end - first)
        self._blen[first:end] = array("I", [block_len]) * (end - first)
        recent_trees = self.recent_trees
        for s in range(first, end):
            if kinds[s] == TREE_TYPE:
                recent_trees.append((self._ids[s], lens[s]))
        self._open = end
        self._checked = 0
        self._raw = bytearray()

    def drop_known(self) -> None:
        """Drop the open block's objects the repository has already.

        Only objects not asked about before are asked, and a block that shrinks
        stays open: on a nightly ingest almost every object put is known, and
        the few new ones must still share full blocks to compress well.
        """
        first = self._open
        unchecked = self._ids[first + self._checked :]
        self._checked = len(self._ids) - first
        if not unchecked or self._known is None:
            return
        known = self._known(unchecked)
        if not known:
            return
        # the open block's slots made anew without the known objects
        raw, kept = self._raw, bytearray()
        slots = [
            (self._kinds[s], self._ids[s], self._off[s], self._len[s])
            for s in range(first, len(self._ids))
        ]
        del self._ids[first:], self._kinds[first:], self._boff[first:], self._blen[first:]
        del self._off[first:], self._len[first:]
        for t, oid, off, ln in slots:
            if oid in known:
                del self.where[oid]
                self.dropped_objects += 1
                self.dropped_bytes += ln
                continue
            self._slot(t, oid, len(kept), ln)
            kept += raw[off : off + ln]
        self._checked = len(self._ids) - first
        self._raw = kept

    @property
    def placed(self) -> list[tuple[int, ObjectId, int, int, int, int]]:
        """(type, id, block_offset, block_length, offset, length) of objects in
        finished blocks, in the order they were added."""
        return list(self.iter_placed())

    def iter_placed(self) -> Iterator[tuple[int, ObjectId, int, int, int, int]]:
        """:attr:`placed` one at a time: a list of a full pack's is 3 MiB."""
        ids, kinds, boff, blen, off, ln = (
            self._ids, self._kinds, self._boff, self._blen, self._off, self._len
        )
        for s in range(self._open):
            yield kinds[s], ids[s], boff[s], blen[s], off[s], ln[s]

    def read(
        self, oid: ObjectId, reader: BlockReader, cache: dict[int, bytes]
    ) -> tuple[int, bytes] | None:
        """Return (type, payload) of an object added to this unfinished pack.

        ``cache`` keeps decoded blocks (by offset): reading back what was just
        written (ingest verifies every document) touches blocks in order.
        """
        s = self.where.get(oid)
        if s is None:
            return None
        t, boff, off, ln = self._kinds[s], self._boff[s], self._off[s], self._len[s]
        if boff < 0:
            return t, bytes(self._raw[off : off + ln])
        raw = cache.get(boff)
        if raw is None:
            raw = reader.payload(self._buf.pread(boff, self._blen[s]))
            if len(cache) >= 32:
                cache.pop(next(iter(cache)))
            cache[boff] = raw
        return t, raw[off : off + ln]

    def finish(self) -> tuple[bytes, memoryview]:
        """Close the last block; return (pack id, a view of the pack's bytes).

        A view, not a copy, for a writer that does not spill: a pack is up
        to 16 MiB and memory must stay flat.
        """
        pack_id, spool = self.finish_spool()
        return pack_id, spool.view()

    def finish_spool(self) -> tuple[bytes, Spool]:
        """Close the last block; return (pack id, the spool of its bytes),
        for :func:`~coursevault.store.spool.write_spool`."""
        self.flush_block()
        return self._buf.digest(), self._buf


def _incompressible(data: bytes | bytearray, cctx: zstandard.ZstdCompressor) -> bool:
    """Does a 64 KiB sample from the middle shrink by less than 3%? (images, PDFs)"""
    mid = max(0, len(data) // 2 - 32768)
    sample = data[mid : mid + 65536]
    return len(cctx.compress(sample)) > 0.97 * len(sample)


DictionaryResolver = Callable[[ObjectId], "zstandard.ZstdDecompressor"]


def table_start(codec: int) -> int:
    """Offset of a block's table of contents from the block's start."""
    return BLOCK_HEAD.size + (DICT_REF if codec == CODEC_ZSTD_DICT else 0)


def block_raw_length(head: bytes | memoryview) -> int:
    """What a block says it decodes to (0 if its header is cut: decoding it
    says what is wrong)."""
    if len(head) < BLOCK_HEAD.size:
        return 0
    raw_len: int = BLOCK_HEAD.unpack_from(head, 0)[3]
    return raw_len


def block_dictionary(head: bytes | memoryview) -> ObjectId | None:
    """The dictionary a block names, from its first ``BLOCK_HEAD.size + DICT_REF``
    bytes (None for blocks of codecs 0 and 1)."""
    if len(head) < BLOCK_HEAD.size:
        raise PackFormatError("block shorter than its header")
    magic, codec, _s, _r, _n = BLOCK_HEAD.unpack_from(head, 0)
    if magic != b"B":
        raise PackFormatError("bad block marker")
    if codec != CODEC_ZSTD_DICT:
        return None
    if len(head) < BLOCK_HEAD.size + DICT_REF:
        raise PackFormatError("block shorter than its header")
    return bytes(head[BLOCK_HEAD.size : BLOCK_HEAD.size + DICT_REF])


class BlockReader:
    """Decodes blocks; keeps one decompression context for speed.

    ``dictionaries`` turns a dictionary id into a decompressor holding its
    content; without it, blocks of codec 2 cannot be read.
    """

    def __init__(self, dictionaries: DictionaryResolver | None = None) -> None:
        self._dctx = zstandard.ZstdDecompressor()
        self._dictionaries = dictionaries

    def decode(self, block: bytes) -> tuple[bytes, list[tuple[int, int, int]]]:
        """Return (raw payload, entries) of one block, checking its structure."""
        table_end = self._check(block)
        n = BLOCK_HEAD.unpack_from(block, 0)[4]
        table = memoryview(block)[table_end - n * ENTRY.size : table_end]
        entries = list(ENTRY.iter_unpack(table))
        return self._inflate(block, table_end), entries

    def payload(self, block: bytes) -> bytes:
        """The raw payload only (when the caller already knows where objects are)."""
        return self._inflate(block, self._check(block))

    @staticmethod
    def _check(block: bytes) -> int:
        if len(block) < BLOCK_HEAD.size:
            raise PackFormatError("block shorter than its header")
        magic, codec, stored_len, _raw_len, n = BLOCK_HEAD.unpack_from(block, 0)
        if magic != b"B":
            raise PackFormatError("bad block marker")
        table_end: int = table_start(codec) + n * ENTRY.size
        if len(block) != table_end + stored_len:
            raise PackFormatError(
                f"block length {len(block)} does not match its header ({table_end + stored_len})"
            )
        return table_end

    def _inflate(self, block: bytes, table_end: int) -> bytes:
        _magic, codec, _stored_len, raw_len, _n = BLOCK_HEAD.unpack_from(block, 0)
        payload = memoryview(block)[table_end:]
        if codec == CODEC_RAW:
            raw = bytes(payload)
        elif codec in (CODEC_ZSTD, CODEC_ZSTD_DICT):
            dctx = self._dctx
            if codec == CODEC_ZSTD_DICT:
                if self._dictionaries is None:
                    raise PackFormatError("block needs a dictionary and none can be read here")
                dict_id = block_dictionary(block)
                assert dict_id is not None
                dctx = self._dictionaries(dict_id)
            try:
                # a corrupt frame header may claim any size: trust only the block header
                claimed = zstandard.frame_content_size(payload)
                if claimed != raw_len:
                    raise PackFormatError(
                        f"zstd frame claims {claimed} bytes, block says {raw_len}"
                    )
                raw = dctx.decompress(payload, max_output_size=raw_len)
            except (zstandard.ZstdError, MemoryError) as exc:
                raise PackFormatError(f"zstd: {exc}") from exc
        else:
            raise PackFormatError(f"unknown block codec {codec}")
        if len(raw) != raw_len:
            raise PackFormatError(f"block decodes to {len(raw)} bytes, header says {raw_len}")
        return raw


def iter_blocks(data: bytes) -> Iterator[tuple[int, int]]:
    """Yield (offset, length) of every block of a whole pack file."""
    if data[:4] != PACK_MAGIC:
        raise PackFormatError("not a pack file (bad magic)")
    if len(data) < len(PACK_HEADER):
        raise PackFormatError("truncated pack header")
    if data[4] not in PACK_VERSIONS:
        raise PackFormatError(f"unknown pack version {data[4]}")
    pos = len(PACK_HEADER)
    while pos < len(data):
        if pos + BLOCK_HEAD.size > len(data):
            raise PackFormatError(f"truncated block header at offset {pos}")
        _m, codec, stored_len, _r, n = BLOCK_HEAD.unpack_from(data, pos)
        length = table_start(codec) + n * ENTRY.size + stored_len
        if pos + length > len(data):
            raise PackFormatError(f"truncated block at offset {pos}")
        yield pos, length
        pos += length


def iter_pack_objects(
    data: bytes, reader: BlockReader | None = None
) -> Iterator[tuple[int, int, int, int, int, bytes]]:
    """(block_offset, block_length, type, offset, length, payload) of every object
    of a whole pack, in order; the caller hashes payloads to learn ids.  Packs
    with dictionary blocks need a ``reader`` that can resolve dictionaries."""
    reader = reader or BlockReader()
    for boff, blen in iter_blocks(data):
        raw, entries = reader.decode(data[boff : boff + blen])
        for t, off, ln in entries:
            if off + ln > len(raw):
                raise PackFormatError(f"block at {boff}: entry runs past the block's end")
            yield boff, blen, t, off, ln, raw[off : off + ln]
