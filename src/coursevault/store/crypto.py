"""Encryption at rest: every file a repository writes, sealed in segments.

A repository keeps everything in files behind the backend, so encrypting at
the backend (a wrapper) covers packs, index files, snapshot records,
dictionaries and refs alike, and the layers above stay as they are: they
read and write plaintext, and ranged reads of a pack's blocks stay ranged.
Only ``config`` (it holds the wrapped keys) and ``locks/`` stay plain.

An encrypted file is the STREAM construction of Hoang, Reyhanitabar, Rogaway
and Vizár, as Tink's AES-GCM-HKDF streaming AEAD and age use it:

    magic "CVE1" | salt (32 random bytes) | segment 0 | segment 1 | ...

Each segment seals at most ``SEGMENT`` bytes of plaintext with AES-256-GCM
(16-byte tag) under the file's own key, HKDF-SHA256(data key, salt); its
nonce is the segment's number (11 bytes, big-endian) and one byte that is 1
on the file's last segment only, so segments cannot be reordered, dropped
or a file cut at a segment boundary unnoticed; the associated data is the
file's key (its name), so one file cannot stand in for another.  A random
salt per write makes a file key fresh even where a name is rewritten (a
ref), so a nonce never repeats under one key.  An empty file is one empty
last segment.  Sizes map exactly: a plaintext of n bytes takes
``HEADER + n + TAG * segments(n)`` bytes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from coursevault.errors import CorruptionError, TruncatedError
from coursevault.store.backend import Backend
from coursevault.store.keys import Secrets
from coursevault.store.wrappers import BackendWrapper

MAGIC = b"CVE1"
SALT = 32
HEADER = len(MAGIC) + SALT
SEGMENT = 64 * 1024
TAG = 16
SEALED = SEGMENT + TAG
PLAIN_PREFIXES = ("locks/",)
PLAIN_KEYS = ("config",)
_SALT_CACHE = 4096  # files whose salt a ranged read remembers


def is_plain(key: str) -> bool:
    """Files that stay unencrypted: the config (the wrapped keys) and locks."""
    return key in PLAIN_KEYS or key.startswith(PLAIN_PREFIXES)


def segments(size: int) -> int:
    """How many segments a plaintext of ``size`` bytes is sealed in (>= 1)."""
    return max(1, -(-size // SEGMENT))


def sealed_size(size: int) -> int:
    return HEADER + size + TAG * segments(size)


def plain_size(sealed: int) -> int:
    """The plaintext size of a sealed file of ``sealed`` bytes (exact)."""
    body = sealed - HEADER
    if body < TAG:
        return 0  # too short to be a file: reading it says so
    count = -(-body // SEALED)
    last = body - (count - 1) * SEALED
    if last < TAG:  # a cut between segments: not a size we write
        count -= 1
    return body - TAG * count


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class FileSealer:
    """Seals and opens files under one data key."""

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != 32:
            raise ValueError("the data key is 32 bytes")
        self._data_key = data_key

    def file_cipher(self, salt: bytes) -> AESGCM:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                    info=b"coursevault/file/v1")
        return AESGCM(hkdf.derive(self._data_key))

    def seal(self, key: str, data: bytes | bytearray | memoryview, salt: bytes) -> bytes:
        cipher, aad, view = self.file_cipher(salt), key.encode(), memoryview(data)
        count = segments(len(view))
        out = bytearray(MAGIC + salt)
        for i in range(count):
            chunk = view[i * SEGMENT:(i + 1) * SEGMENT]
            out += cipher.encrypt(_nonce(i, i == count - 1), bytes(chunk), aad)
        return bytes(out)

    def open_segments(
        self, key: str, cipher: AESGCM, first: int, sealed: bytes | memoryview, to_end: bool
    ) -> bytes:
        """The plaintext of consecutive sealed segments from number ``first``;
        ``to_end``: the last of them must be the file's last."""
        if not sealed and to_end and first == 0:
            raise CorruptionError(f"{key}: an encrypted file without segments (truncated)")
        aad, parts, at, index, view = key.encode(), [], 0, first, memoryview(sealed)
        while at < len(view):
            chunk = view[at:at + SEALED]
            at += len(chunk)
            final = at >= len(view)
            try:
                if final and to_end:
                    parts.append(cipher.decrypt(_nonce(index, True), chunk, aad))
                else:
                    parts.append(_open_middle(cipher, index, chunk, aad))
            except InvalidTag:
                raise CorruptionError(
                    f"{key}: segment {index} fails authentication (tampered, truncated, "
                    "or another repository's key)") from None
            index += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _open_middle(cipher: AESGCM, index: int, chunk: memoryview, aad: bytes) -> bytes:
    """A segment that may or may not be the file's last (a ranged read does
    not know the file's size): only one of the two nonces authenticates."""
    try:
        return cipher.decrypt(_nonce(index, False), chunk, aad)
    except InvalidTag:
        return cipher.decrypt(_nonce(index, True), chunk, aad)


class EncryptedBackend(BackendWrapper):
    """A backend whose files are sealed (module docstring); the layers above
    see plaintext.  Keeps no plaintext anywhere but in memory."""

    def __init__(self, inner: Backend, keys: Secrets) -> None:
        super().__init__(inner)
        self.keys = keys
        self.sealer = FileSealer(keys.data_key)
        self._salts: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:  # a worker process reopens it
        return {"inner": self.inner, "keys": self.keys}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["inner"], state["keys"])  # type: ignore[misc]

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        for key, size in self.inner.list(prefix):
            yield key, size if is_plain(key) else plain_size(size)

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        if is_plain(key):
            self.inner.write(key, data)
            return
        self._salts.pop(key, None)
        self.inner.write(key, self.sealer.seal(key, data, _fresh_salt()))

    def create(self, key: str, data: bytes) -> bool:
        if is_plain(key):
            return self.inner.create(key, data)
        self._salts.pop(key, None)
        return self.inner.create(key, self.sealer.seal(key, data, _fresh_salt()))

    def delete(self, key: str) -> None:
        self._salts.pop(key, None)
        self.inner.delete(key)

    def compare_and_swap(self, key: str, expected: bytes | None, data: bytes) -> bool:
        if is_plain(key):
            return self.inner.compare_and_swap(key, expected, data)
        current: bytes | None
        try:
            current = self.inner.read(key)
        except FileNotFoundError:
            current = None
        if (None if current is None else self._open_whole(key, current)) != expected:
            return False
        self._salts.pop(key, None)
        return self.inner.compare_and_swap(key, current, self.sealer.seal(key, data,
                                                                          _fresh_salt()))

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if is_plain(key):
            return self.inner.read(key, offset, length)
        if length == 0:
            return b""
        first = offset // SEGMENT
        if first == 0:
            end = None if length is None else HEADER + _sealed_end(offset + length)
            raw, whole = self._span(key, 0, end)
            salt = self._header(key, raw)
            plain = self.sealer.open_segments(key, self.sealer.file_cipher(salt), 0,
                                              raw[HEADER:], whole)
        else:
            plain = self._read_from(key, first, offset, length)
        skip = offset - first * SEGMENT
        if length is None:
            return plain[skip:]
        if len(plain) < skip + length:
            raise TruncatedError(f"short read from {key}: wanted {length} bytes at {offset}, "
                                 f"got {max(0, len(plain) - skip)}")
        return plain[skip:skip + length]

    def _span(self, key: str, start: int, length: int | None) -> tuple[bytes, bool]:
        """Sealed bytes from ``start``: ``length`` of them, or to the end where
        the file ends sooner (its last segment is shorter than a whole one);
        and whether they reach the end of the file."""
        if length is None:
            return self.inner.read(key, start, None), True
        try:
            return self.inner.read(key, start, length), False
        except TruncatedError:
            return self.inner.read(key, start, None), True

    def _read_from(self, key: str, first: int, offset: int, length: int | None) -> bytes:
        start = HEADER + first * SEALED
        end = None if length is None else HEADER + _sealed_end(offset + length) - start
        for attempt in (1, 2):  # a remembered salt may be stale (the file was rewritten)
            salt = self._salts.get(key) if attempt == 1 else None
            if salt is None:
                salt = self._header(key, self.inner.read(key, 0, HEADER))
            raw, whole = self._span(key, start, end)
            try:
                return self.sealer.open_segments(key, self.sealer.file_cipher(salt), first,
                                                 raw, whole)
            except CorruptionError:
                self._salts.pop(key, None)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _header(self, key: str, raw: bytes) -> bytes:
        if len(raw) < HEADER or raw[:len(MAGIC)] != MAGIC:
            raise CorruptionError(f"{key}: not an encrypted repository file (no header)")
        salt = raw[len(MAGIC):HEADER]
        with self._lock:  # pack uploads and block reads run in threads
            self._salts[key] = salt
            self._salts.move_to_end(key)
            while len(self._salts) > _SALT_CACHE:
                self._salts.popitem(last=False)
        return salt

    def _open_whole(self, key: str, raw: bytes) -> bytes:
        salt = self._header(key, raw)
        return self.sealer.open_segments(key, self.sealer.file_cipher(salt), 0, raw[HEADER:],
                                         True)


def _sealed_end(plain_end: int) -> int:
    """Where, past the header, the sealed bytes holding plaintext up to
    ``plain_end`` end (the segment holding its last byte, whole)."""
    last = (plain_end - 1) // SEGMENT
    return (last + 1) * SEALED


def _fresh_salt() -> bytes:
    import secrets

    return secrets.token_bytes(SALT)
