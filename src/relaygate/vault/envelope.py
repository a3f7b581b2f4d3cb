"""Envelope encryption of one secret version.

Each version gets its own data key from the KEK provider; the value is encrypted with AES-256-GCM
under that data key with a fresh 96-bit nonce. The associated data names the owner (tenant and
environment, or the operator), the secret's name and the version, so a ciphertext or a wrapped key
copied to another row does not open. The stored record carries the KEK id and version.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relaygate.vault.kms.base import KeyEncryptionKey, KMSError, WrappedKey

_NONCE = 12
OPERATOR = "*"


class EnvelopeError(Exception):
    """A secret version does not decrypt (tampered, moved, or its KEK version retired)."""


@dataclass(frozen=True, slots=True)
class SecretAddress:
    """Where a secret version lives; the associated data of its encryption."""

    tenant_id: str  # OPERATOR for a secret the operator shares by grants
    environment: str  # OPERATOR for an operator secret
    name: str
    version: int

    def associated_data(self) -> bytes:
        """Length-prefixed fields, so no two addresses encode alike."""
        fields = (self.tenant_id, self.environment, self.name, str(self.version))
        out = bytearray(b"relaygate-secret/v1")
        for field in fields:
            raw = field.encode()
            out += len(raw).to_bytes(2, "big") + raw
        return bytes(out)


@dataclass(frozen=True, slots=True)
class SealedSecret:
    """A stored secret version: the wrapped data key and `nonce || ciphertext+tag`."""

    wrapped: WrappedKey
    ciphertext: bytes


async def encrypt(kek: KeyEncryptionKey, address: SecretAddress, value: bytes) -> SealedSecret:
    """Encrypt `value` for `address` under a new data key."""
    aad = address.associated_data()
    data_key = await kek.generate(aad)
    nonce = os.urandom(_NONCE)
    ciphertext = nonce + AESGCM(data_key.plaintext).encrypt(nonce, value, aad)
    return SealedSecret(data_key.wrapped, ciphertext)


def open_with(data_key: bytes, address: SecretAddress, sealed: SealedSecret) -> bytes:
    """Decrypt with an already unwrapped data key."""
    blob = sealed.ciphertext
    try:
        return AESGCM(data_key).decrypt(blob[:_NONCE], blob[_NONCE:], address.associated_data())
    except (InvalidTag, ValueError):
        raise EnvelopeError("secret does not decrypt: tampered or moved") from None


async def decrypt(kek: KeyEncryptionKey, address: SecretAddress, sealed: SealedSecret) -> bytes:
    """The plaintext of a stored version (unwraps its data key first)."""
    try:
        data_key = await kek.unwrap(sealed.wrapped, address.associated_data())
    except KMSError as exc:
        raise EnvelopeError(str(exc)) from None
    return open_with(data_key, address, sealed)
