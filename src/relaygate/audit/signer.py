"""The Ed25519 key that signs audit checkpoints.

The private key comes from `RELAYGATE_AUDIT_KEY` (base64url of the 32-byte seed) or from
`<data_dir>/audit-signing.key` (created 0600 on first start). The public key travels with every
exported checkpoint; pin it (`relaygate audit verify --public-key`) to trust exports.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from relaygate.vault.keyfile import read_or_create

ENV_VAR = "RELAYGATE_AUDIT_KEY"
FILE_NAME = "audit-signing.key"


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_text(key: Ed25519PublicKey) -> str:
    """The raw public key, base64url."""
    return _b64e(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def key_id_of(public_text: str) -> str:
    """A short id of a public key."""
    return hashlib.sha256(_b64d(public_text)).hexdigest()[:16]


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from its base64url text; ValueError if malformed."""
    return Ed25519PublicKey.from_public_bytes(_b64d(text))


def verify_signature(public_text: str, signature: str, message: bytes) -> bool:
    """True if `signature` (base64url) is `public_text`'s signature of `message`."""
    try:
        load_public_key(public_text).verify(_b64d(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


class CheckpointSigner:
    """Signs checkpoint statements with the deployment's audit key."""

    def __init__(self, seed: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = public_key_text(self._key.public_key())
        self.key_id = key_id_of(self.public_key)

    @classmethod
    def open(cls, environ: Mapping[str, str], data_dir: Path) -> CheckpointSigner:
        """The signer from the environment, else from the key file (created if missing)."""
        if environ.get(ENV_VAR):
            return cls(_b64d(environ[ENV_VAR]))
        seed = read_or_create(data_dir / FILE_NAME, lambda: _b64e(os.urandom(32)))
        return cls(_b64d(seed))

    def sign(self, message: bytes) -> str:
        """The base64url signature of `message`."""
        return _b64e(self._key.sign(message))
