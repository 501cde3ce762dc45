"""Moodle's encrypted backup elements (``encrypted="true"``), read and written.

Moodle 4.5's ``encrypted_final_element`` (backup/moodle2/backup_custom_fields.php)
writes ``base64(hmac || iv || ciphertext)``: AES-256-CBC with PKCS#7 padding
under the site's key, a fresh random 16-byte IV per value, and an HMAC-SHA256
of ``iv || ciphertext`` under the same key.  The key is the config setting
``backup_encryptkey`` of plugin ``backup`` (``mdl_config_plugins``), base64 of
32 random bytes, made the first time a backup encrypts anything.

Two correct backups of one course therefore differ in these values every
time; the comparer compares what they decrypt to instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_BYTES = 32
IV_BYTES = 16
HMAC_BYTES = 32


class EncryptedValueError(ValueError):
    """A value that is not what Moodle's restore could decrypt (bad base64,
    too short, an HMAC that does not match, bad padding)."""


def decrypt_value(text: bytes | str, key: bytes) -> bytes:
    """The plaintext of one encrypted element's text, checked as Moodle's
    restore checks it (the HMAC first), so a value our writer got wrong never
    passes for the right one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EncryptedValueError(f"not base64: {exc}") from None
    if len(raw) < HMAC_BYTES + IV_BYTES + 16 or (len(raw) - HMAC_BYTES - IV_BYTES) % 16:
        raise EncryptedValueError(f"{len(raw)} bytes is no hmac + iv + AES blocks")
    mac, body = raw[:HMAC_BYTES], raw[HMAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise EncryptedValueError("HMAC does not match (another key, or damaged)")
    iv, ciphertext = body[:IV_BYTES], body[IV_BYTES:]
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise EncryptedValueError("bad PKCS#7 padding") from None


def encrypt_value(plaintext: bytes, key: bytes, iv: bytes | None = None) -> str:
    """The text Moodle would write for ``plaintext`` (a random IV unless given):
    for tests that re-encrypt, and the reference for a writer's own code."""
    iv = os.urandom(IV_BYTES) if iv is None else iv
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    body = iv + encryptor.update(padded) + encryptor.finalize()
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return base64.b64encode(mac + body).decode("ascii")


def key_from_config(value: str) -> bytes:
    """The raw key from ``backup_encryptkey``'s config value (base64)."""
    key = base64.b64decode(value, validate=True)
    if len(key) != KEY_BYTES:
        raise ValueError(f"backup_encryptkey holds {len(key)} bytes, not {KEY_BYTES}")
    return key
