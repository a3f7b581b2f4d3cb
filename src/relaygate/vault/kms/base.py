"""The key-encryption-key (KEK) interface behind envelope encryption.

Every secret version is encrypted with its own 256-bit data key (DEK). The DEK is stored only
wrapped by a KEK that lives in a key management service. Implementations never see secret
values, only data keys, and never log them.

`context` is the envelope's associated data (tenant, environment, secret name, version). Every
implementation binds the wrapped DEK to it (AES-GCM AAD locally, an encryption context in AWS KMS,
a derivation/associated context in Vault Transit or an AAD prefix), so a wrapped key copied to
another row fails to unwrap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class KMSError(Exception):
    """The KMS refused or failed; the message names no key material and no credential."""


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key as stored: which KEK wrapped it, which version of that KEK, and the bytes."""

    kek_id: str
    kek_version: int
    blob: bytes


@dataclass(frozen=True, slots=True)
class DataKey:
    """A fresh data key: its plaintext (use once, then drop) and its wrapped form (store)."""

    plaintext: bytes
    wrapped: WrappedKey


class KeyEncryptionKey(Protocol):
    """One KEK in one KMS. All methods are coroutines; the remote ones do network I/O."""

    kek_id: str

    async def generate(self, context: bytes) -> DataKey:
        """A new random 256-bit data key, wrapped under the current KEK version."""
        ...

    async def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        """The plaintext data key; KMSError if tampered, bound to another context, or the KEK
        version is retired."""
        ...

    async def rewrap(self, wrapped: WrappedKey, context: bytes) -> WrappedKey:
        """The same data key wrapped under the current KEK version, without the caller ever
        holding the plaintext (where the KMS offers it: Vault `rewrap`, AWS `ReEncrypt`)."""
        ...

    async def rotate(self) -> int:
        """Add a new KEK version and make it current; returns the new version."""
        ...

    async def retire_below(self, version: int) -> None:
        """Refuse unwrapping under versions older than `version` (after a rewrap of all keys).
        Where the KMS can do it (Vault `min_decryption_version`), it is enforced there."""
        ...

    async def current_version(self) -> int:
        """The version new data keys are wrapped under."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
