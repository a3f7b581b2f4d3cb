"""Seal small secrets (signing secrets, JWT HMAC keys) with AES-256-GCM under the master key.

A sealed value is `v1.<key id>.<base64url(nonce || ciphertext+tag)>`. Every value gets a fresh
random 96-bit nonce, and the associated data binds it to where it is stored (e.g.
`api_keys/<id>/signing`), so a ciphertext copied to another row does not open.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class SealError(Exception):
    """A sealed value is malformed, sealed under another key, or bound to another place."""


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Sealer:
    """Encrypts and decrypts with one 256-bit master key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._aead = AESGCM(master_key)
        self.key_id = hashlib.sha256(b"relaygate-master-key-id" + master_key).hexdigest()[:8]

    def seal(self, plaintext: bytes, bound_to: str) -> str:
        """Encrypt `plaintext`, bound to the place named `bound_to`."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, bound_to.encode())
        return f"v1.{self.key_id}.{_b64e(nonce + sealed)}"

    def open(self, sealed: str, bound_to: str) -> bytes:
        """Decrypt a value produced by `seal` for the same place; SealError otherwise."""
        version, _, rest = sealed.partition(".")
        key_id, _, payload = rest.partition(".")
        if version != "v1" or not payload:
            raise SealError("not a sealed value")
        if key_id != self.key_id:
            raise SealError("sealed under a different master key")
        try:
            raw = _b64d(payload)
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], bound_to.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealError("cannot open: tampered, or bound to another place") from exc
