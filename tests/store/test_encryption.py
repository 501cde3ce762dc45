"""Encrypted repositories at the store's level: sealed files read back as
written (whole and in ranges, every size around a segment), any change to a
sealed file is CorruptionError and never other bytes, ids are keyed, and
the key slots open, refuse and change as documented (issue 25)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from coursevault.errors import (
    BadInputError,
    CorruptionError,
    FormatVersionError,
    TruncatedError,
    WrongPasswordError,
)
from coursevault.store import ids
from coursevault.store.backend import LocalBackend
from coursevault.store.crypto import HEADER, SEGMENT, EncryptedBackend, plain_size, sealed_size
from coursevault.store.keys import Secrets, add_slot, change_password, list_slots, remove_slot
from coursevault.store.repository import Repository

# cheap key derivation for tests: the format records the parameters per slot
FAST = {"name": "argon2id", "memory_kib": 1024, "iterations": 1, "lanes": 1}
SIZES = [0, 1, 100, SEGMENT - 1, SEGMENT, SEGMENT + 1, 2 * SEGMENT, 3 * SEGMENT + 17]


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[LocalBackend, EncryptedBackend]:
    raw = LocalBackend(tmp_path / "store")
    return raw, EncryptedBackend(raw, Secrets.fresh())


@pytest.mark.parametrize("size", SIZES)
def test_every_size_reads_back_whole_and_in_ranges(sealed, size: int) -> None:  # type: ignore[no-untyped-def]
    raw, b = sealed
    data = random.Random(size).randbytes(size)
    b.write("packs/ab/ab01", data)
    assert dict(raw.list("packs/"))["packs/ab/ab01"] == sealed_size(size)
    assert dict(b.list("packs/")) == {"packs/ab/ab01": size}
    assert plain_size(sealed_size(size)) == size
    assert b.read("packs/ab/ab01") == data
    rng = random.Random(7)
    for _ in range(40):
        offset = rng.randrange(size + 1)
        length = rng.randrange(size - offset + 1)
        assert b.read("packs/ab/ab01", offset, length) == data[offset:offset + length]
        assert b.read("packs/ab/ab01", offset) == data[offset:]
    with pytest.raises(TruncatedError):
        b.read("packs/ab/ab01", size, 1)


def test_no_plaintext_and_a_fresh_salt_per_write(sealed) -> None:  # type: ignore[no-untyped-def]
    raw, b = sealed
    secret = b"Alice Example <alice@example.org> " * 100
    b.write("refs/heads/c", secret)
    first = raw.read("refs/heads/c")
    b.write("refs/heads/c", secret)
    second = raw.read("refs/heads/c")
    assert b"alice" not in first and first != second  # same plaintext, new key
    assert first[:4] == b"CVE1" and len(first) == sealed_size(len(secret))


def test_config_and_locks_stay_plain(sealed) -> None:  # type: ignore[no-untyped-def]
    raw, b = sealed
    b.write("config", b'{"id": "x"}')
    b.write("locks/abc", b"pid 1")
    assert raw.read("config") == b'{"id": "x"}' and raw.read("locks/abc") == b"pid 1"


def _flip(raw: LocalBackend, key: str, at: int) -> None:
    data = bytearray(raw.read(key))
    data[at] ^= 0x01
    raw.write(key, bytes(data))


@pytest.mark.parametrize("where", ["magic", "salt", "first", "middle", "tag", "last"])
def test_any_bit_flip_is_corruption(sealed, where: str) -> None:  # type: ignore[no-untyped-def]
    raw, b = sealed
    data = random.Random(1).randbytes(2 * SEGMENT + 10)
    b.write("index/01", data)
    size = len(raw.read("index/01"))
    at = {"magic": 0, "salt": 10, "first": HEADER + 3, "middle": HEADER + SEGMENT + 40,
          "tag": HEADER + SEGMENT + 5, "last": size - 1}[where]
    _flip(raw, "index/01", at)
    with pytest.raises(CorruptionError):
        b.read("index/01")
    if where not in ("magic", "salt"):
        with pytest.raises(CorruptionError):  # a ranged read of the damaged segment too
            b.read("index/01", (at - HEADER) // (SEGMENT + 16) * SEGMENT, 5)


def test_cut_swapped_or_foreign_files_are_corruption(sealed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw, b = sealed
    data = random.Random(2).randbytes(3 * SEGMENT)
    b.write("packs/aa/a1", data)
    b.write("packs/bb/b2", data[::-1])
    whole = raw.read("packs/aa/a1")
    raw.write("packs/aa/a1", whole[:HEADER + 2 * (SEGMENT + 16)])  # cut at a segment's end
    with pytest.raises(CorruptionError):
        b.read("packs/aa/a1")
    raw.write("packs/aa/a1", raw.read("packs/bb/b2"))  # another file's bytes, another name
    with pytest.raises(CorruptionError):
        b.read("packs/aa/a1")
    other = EncryptedBackend(raw, Secrets.fresh())  # another repository's keys
    with pytest.raises(CorruptionError):
        other.read("packs/bb/b2")


def test_compare_and_swap_compares_plaintext(sealed) -> None:  # type: ignore[no-untyped-def]
    _raw, b = sealed
    assert b.compare_and_swap("refs/heads/x", None, b"one")
    assert not b.compare_and_swap("refs/heads/x", None, b"two")
    assert not b.compare_and_swap("refs/heads/x", b"zero", b"two")
    assert b.compare_and_swap("refs/heads/x", b"one", b"two")
    assert b.read("refs/heads/x") == b"two"


def test_ids_are_keyed_while_an_encrypted_repository_is_open(tmp_path: Path) -> None:
    plain = ids.object_id(ids.ObjectType.BLOB, b"content")
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, password=b"pw", kdf=FAST)
    with Repository.open(backend, cache_dir=tmp_path / "c", password=b"pw"):
        keyed = ids.object_id(ids.ObjectType.BLOB, b"content")
        hasher = ids.id_hasher(ids.ObjectType.BLOB)()
        hasher.update(b"content")
        assert keyed != plain and hasher.digest() == keyed
    assert ids.object_id(ids.ObjectType.BLOB, b"content") == plain  # closed: plain again


def test_passphrases_and_slots(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, password=b"first", kdf=FAST)
    for wrong in (b"First", None):
        with pytest.raises(WrongPasswordError):
            Repository.open(backend, cache_dir=tmp_path / "c", password=wrong)
    second = add_slot(backend, b"first", b"second", FAST)
    assert [s["current"] for s in list_slots(backend, b"second")] == [False, True]
    with pytest.raises(BadInputError):  # a passphrase cannot remove its own slot
        remove_slot(backend, b"second", second)
    first_id = next(s["id"] for s in list_slots(backend, b"first") if s["current"])
    remove_slot(backend, b"second", first_id)
    with pytest.raises(WrongPasswordError):
        list_slots(backend, b"first")
    change_password(backend, b"second", b"third", FAST)
    with pytest.raises(WrongPasswordError):
        list_slots(backend, b"second")
    Repository.open(backend, cache_dir=tmp_path / "c", password=b"third").close()


def test_a_config_claiming_keys_it_has_not_is_refused(tmp_path: Path) -> None:
    import json

    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    config = json.loads(backend.read("config"))
    backend.write("config", json.dumps({**config, "version": 4}).encode())
    with pytest.raises(CorruptionError):
        Repository.open(backend, cache_dir=tmp_path / "c")
    backend.write("config", json.dumps({**config, "version": 6}).encode())
    with pytest.raises(FormatVersionError):
        Repository.open(backend, cache_dir=tmp_path / "c")


def test_a_plain_repository_opens_without_cryptography(tmp_path: Path) -> None:
    """cryptography (8 MB of a restore's peak memory) is loaded for an
    encrypted repository only; a fresh interpreter, as the CLI is."""
    import subprocess
    import sys

    Repository.init(LocalBackend(str(tmp_path / "plain")))
    code = (
        "import sys\n"
        "from coursevault import api\n"
        f"api.open_repository({str(tmp_path / 'plain')!r}, cache_dir={str(tmp_path / 'c')!r})"
        ".close()\n"
        "print('cryptography' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
