"""The keys of an encrypted repository, and the slots that hold them.

A repository's secrets are 64 random bytes made once, at ``init``: the data
key that seals its files (crypto.py) and the id key that object ids are a
keyed BLAKE3 hash under (ids.py), so an id reveals nothing of what it names.
They never change -- changing them would mean rewriting every file -- so
what a user knows (a passphrase, or a key file's contents) only unwraps
them: each key slot in the config holds the secrets sealed with AES-256-GCM
under a key derived from one passphrase with Argon2id (memory-hard, so a
stolen config costs an attacker 64 MiB and a fraction of a second per
guess).  Several slots open the same repository, which is how a passphrase
is changed or a second one given without touching the data (``key add``,
``key remove``, ``key passwd``), as restic and LUKS do.

The slots live in the plain ``config`` file (nothing there is secret
without a passphrase) and are changed by compare-and-swap, so two key
commands never lose each other's slot.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coursevault.errors import (
    BadInputError,
    CorruptionError,
    NoRepositoryError,
    WrongPasswordError,
)

if TYPE_CHECKING:
    from coursevault.store.backend import Backend

CIPHER = "aes-256-gcm-stream/v1"
# Argon2id as RFC 9106's second recommendation, memory raised from 64 MiB
# being what a laptop and a small VM both afford in well under a second.
KDF = {"name": "argon2id", "memory_kib": 64 * 1024, "iterations": 3, "lanes": 4}
_SLOT_AAD = b"coursevault/key-slot/v1"


@dataclass(frozen=True)
class Secrets:
    """What a slot unwraps: the data key (files) and the id key (ids)."""

    data_key: bytes
    id_key: bytes

    @classmethod
    def fresh(cls) -> Secrets:
        return cls(secrets.token_bytes(32), secrets.token_bytes(32))


# cryptography is imported where keys are used: a plain repository's
# commands never load it (8 MB of a restore's peak memory)


def _derive(password: bytes, salt: bytes, kdf: dict[str, Any]) -> bytes:
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    if kdf.get("name") != "argon2id":
        raise CorruptionError(f"key slot: unknown key derivation {kdf.get('name')!r}")
    return Argon2id(salt=salt, length=32, iterations=int(kdf["iterations"]),
                    lanes=int(kdf["lanes"]), memory_cost=int(kdf["memory_kib"])).derive(password)


def make_slot(keys: Secrets, password: bytes, kdf: dict[str, Any] | None = None) -> dict[str, Any]:
    """A new slot holding ``keys`` under ``password``."""
    if not password:
        raise BadInputError("an empty passphrase opens nothing: give one")
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    params = dict(KDF if kdf is None else kdf)
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    sealed = AESGCM(_derive(password, salt, params)).encrypt(
        nonce, keys.data_key + keys.id_key, _SLOT_AAD)
    return {"id": secrets.token_hex(4), "kdf": params, "salt": salt.hex(),
            "nonce": nonce.hex(), "sealed": sealed.hex(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _open_slot(slot: dict[str, Any], password: bytes) -> Secrets | None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        kek = _derive(password, bytes.fromhex(slot["salt"]), slot["kdf"])
        raw = AESGCM(kek).decrypt(bytes.fromhex(slot["nonce"]), bytes.fromhex(slot["sealed"]),
                                  _SLOT_AAD)
    except InvalidTag:
        return None
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptionError(f"repository config: key slot {slot.get('id')} is unreadable "
                              f"({exc})") from None
    return Secrets(raw[:32], raw[32:])


def unlock(
    encryption: dict[str, Any], password: bytes, where: str = ""
) -> tuple[Secrets, str]:
    """The secrets, and the id of the slot ``password`` opened;
    ``WrongPasswordError`` when it opens none (naming the repository
    ``where`` is: a sync has two)."""
    if encryption.get("cipher") != CIPHER:
        raise CorruptionError(f"repository config: unknown cipher {encryption.get('cipher')!r}")
    damaged: CorruptionError | None = None
    for slot in encryption.get("slots", []):
        try:
            keys = _open_slot(slot, password)
        except CorruptionError as exc:
            # the others are tried: a second passphrase is kept for when
            # one slot is lost, and with it `key remove` of the damaged one
            damaged = damaged or exc
            continue
        if keys is not None:
            return keys, str(slot["id"])
    if damaged is not None:  # perhaps this passphrase's own slot: say so
        raise damaged
    repository = f"the repository at {where}" if where else "the repository"
    raise WrongPasswordError(f"wrong passphrase: it opens none of {repository}'s key slots")


def new_encryption(
    password: bytes, kdf: dict[str, Any] | None = None, id_key: bytes | None = None
) -> tuple[dict[str, Any], Secrets]:
    """The config's ``encryption`` section of a new repository, and the
    keys it holds (``init`` seals the files it writes with them).  With
    ``id_key`` (another repository's), ids are computed as there, so sync
    copies objects between the two, sealing them anew under this one's own
    data key."""
    fresh = Secrets.fresh()
    keys = fresh if id_key is None else Secrets(fresh.data_key, id_key)
    return {"cipher": CIPHER, "slots": [make_slot(keys, password, kdf)]}, keys


def id_key_of(backend: Backend, password: bytes) -> bytes:
    """The id key of the encrypted repository at ``backend``."""
    _raw, config = _read_config(backend)
    keys, _slot = unlock(config["encryption"], password, backend.location())
    return keys.id_key


def config_bytes(config: dict[str, Any]) -> bytes:
    return json.dumps(config, indent=2, sort_keys=True).encode() + b"\n"


# An encrypted repository's format version: format 3 with every file but the
# config and locks sealed.  A program that reads only plain repositories
# refuses it by its version instead of taking sealed files for damage.
ENCRYPTED_VERSION = 4

Password = bytes | Callable[[], bytes] | None


def sealed_backend(backend: Backend, config: dict[str, Any], password: Password) -> Backend:
    """``backend`` as the repository's layers must see it: plain, or for an
    encrypted repository unsealed under the keys ``password`` opens.  A
    backend already unsealed (handed to a worker process) is kept."""
    from coursevault.store import ids

    encryption = config.get("encryption")
    if encryption is None:  # a plain repository needs no cryptography (0.008 s to import)
        ids.use_id_key(None)
        return backend
    from coursevault.store.crypto import EncryptedBackend

    if not isinstance(backend, EncryptedBackend):
        given = password() if callable(password) else password
        if given is None:
            raise WrongPasswordError(
                f"the repository at {backend.location()} is encrypted: give its passphrase "
                "(COURSEVAULT_PASSWORD, COURSEVAULT_PASSWORD_FILE or --password-file)")
        keys, _slot = unlock(encryption, given, backend.location())
        backend = EncryptedBackend(backend, keys)
    ids.use_id_key(backend.keys.id_key)
    return backend


# -- key commands: the slots of the config, changed by compare-and-swap --------------


def _read_config(backend: Backend) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = backend.read("config")
    except FileNotFoundError:
        raise NoRepositoryError(f"no repository at {backend.location()}") from None
    try:
        config: dict[str, Any] = json.loads(raw)
        if not isinstance(config, dict):
            raise ValueError("not an object")
    except ValueError:  # as Repository.open says it: a JSONDecodeError was an internal error
        raise CorruptionError(f"repository config at {backend.location()} is unreadable") from None
    if "encryption" not in config:
        raise BadInputError(f"the repository at {backend.location()} is not encrypted: "
                            "it has no keys (init --encrypt makes one that has)")
    return raw, config


def _change(backend: Backend, password: bytes,
            change: Callable[[dict[str, Any], Secrets, str], None]) -> dict[str, Any]:
    """Unlock, apply ``change`` to the config's encryption section, write
    it back only if no other key command wrote meanwhile (then again)."""
    for _attempt in range(10):
        raw, config = _read_config(backend)
        keys, opened = unlock(config["encryption"], password, backend.location())
        change(config["encryption"], keys, opened)
        if backend.compare_and_swap("config", raw, config_bytes(config)):
            return config
    raise CorruptionError("repository config: changed by others ten times over; try again")


def require_encrypted(backend: Backend) -> None:
    """Refuse, before any passphrase is asked for, a location that holds no
    repository (NoRepositoryError) or a plain one (BadInputError)."""
    _read_config(backend)


def list_slots(backend: Backend, password: bytes) -> list[dict[str, Any]]:
    """The key slots (id, created, key derivation), and which ``password`` opens."""
    _raw, config = _read_config(backend)
    _keys, opened = unlock(config["encryption"], password, backend.location())
    return [{"id": s["id"], "created": s.get("created"), "kdf": s["kdf"],
             "current": s["id"] == opened} for s in config["encryption"]["slots"]]


def add_slot(backend: Backend, password: bytes, new_password: bytes,
             kdf: dict[str, Any] | None = None) -> str:
    """A second way in: a slot ``new_password`` opens; returns its id."""
    made: list[str] = []

    def add(enc: dict[str, Any], keys: Secrets, _opened: str) -> None:
        slot = make_slot(keys, new_password, kdf)
        made.append(slot["id"])
        enc["slots"].append(slot)

    _change(backend, password, add)
    return made[-1]


def remove_slot(backend: Backend, password: bytes, slot_id: str) -> None:
    """Remove another slot (never the one ``password`` opened: as restic, a
    passphrase cannot lock itself out)."""
    def remove(enc: dict[str, Any], _keys: Secrets, opened: str) -> None:
        if slot_id == opened:
            raise BadInputError(f"key slot {slot_id} is the one this passphrase opens: "
                                "remove it with another one")
        if not any(s["id"] == slot_id for s in enc["slots"]):
            raise BadInputError(f"no key slot {slot_id}: `coursevault key list` shows them")
        enc["slots"] = [s for s in enc["slots"] if s["id"] != slot_id]

    _change(backend, password, remove)


def change_password(backend: Backend, password: bytes, new_password: bytes,
                    kdf: dict[str, Any] | None = None) -> str:
    """Replace the slot ``password`` opens by one ``new_password`` opens."""
    made: list[str] = []

    def replace(enc: dict[str, Any], keys: Secrets, opened: str) -> None:
        slot = make_slot(keys, new_password, kdf)
        made.append(slot["id"])
        enc["slots"] = [slot if s["id"] == opened else s for s in enc["slots"]]

    _change(backend, password, replace)
    return made[-1]
