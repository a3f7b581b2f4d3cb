"""Keys and small helpers shared by the authentication tests (generated once per session)."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from relaygate.auth.failure import PUBLIC_MESSAGE, AuthFailed

NOW = 1_800_000_000.0
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
HS_SECRET = secrets.token_bytes(32)


def public_pem(private_key: Any) -> bytes:
    """The SubjectPublicKeyInfo PEM of a private key's public half."""
    pem: bytes = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


def private_pem(private_key: Any) -> bytes:
    """An unencrypted PKCS#8 PEM of a private key."""
    pem: bytes = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem


def b64url(data: bytes) -> str:
    """base64url without padding, as in JWTs."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    """A JWT segment: compact JSON, base64url."""
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def public_failure(exc: AuthFailed) -> str:
    """The internal reason, after checking that the public text reveals nothing."""
    assert str(exc) == PUBLIC_MESSAGE
    assert exc.args == (PUBLIC_MESSAGE,)
    return exc.reason
