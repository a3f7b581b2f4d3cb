"""API key format: `rg_live_<key id>_<secret><checksum>`.

256 CSPRNG bits of secret, an identifying prefix so scanners can spot leaks, a key id for
lookups and logs, and a CRC32 checksum (6 base62 characters, GitHub style) so a typo or a
random string is rejected before any lookup. Only the SHA-256 of the whole key is stored.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIXES = ("rg_live_", "rg_test_", "rg_admin_")
KEY_ID_LENGTH = 9
MIN_OPERATOR_KEY_LENGTH = 32
MAX_OPERATOR_KEY_LENGTH = 256
# What a listing shows of a key that is not a generated one: a few characters, never more.
CHOSEN_PREFIX_LENGTH = 4


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        digits.append(ALPHABET[rem])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), 6)


def new_key_id() -> str:
    """A short random identifier (not secret) naming a key in logs and the admin API."""
    return _base62(secrets.randbits(48), 9)


def generate_key(environment: str = "production", *, admin: bool = False) -> tuple[str, str]:
    """A fresh key and its id. Non-production environments get `rg_test_`, admins `rg_admin_`."""
    key_id = new_key_id()
    prefix = "rg_live_" if environment == "production" else "rg_test_"
    if admin:
        prefix = "rg_admin_"
    body = f"{prefix}{key_id}_{_base62(secrets.randbits(256), 43)}"
    return body + _checksum(body), key_id


def has_valid_checksum(key: str) -> bool:
    """True for a well-formed generated key (operator-chosen keys have no checksum)."""
    return key.startswith(PREFIXES) and len(key) > 6 and _checksum(key[:-6]) == key[-6:]


def hash_key(key: str) -> str:
    """The stored form of a key: hex SHA-256 (keys carry 256 bits, so no slow hash is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _generated_prefix(key: str) -> str | None:
    """`rg_live_<key id>_` of a well-formed generated key; None for any other string."""
    for prefix in PREFIXES:
        end = len(prefix) + KEY_ID_LENGTH
        if key.startswith(prefix) and key[end : end + 1] == "_" and has_valid_checksum(key):
            return key[: end + 1]
    return None


def display_prefix(key: str) -> str:
    """The non-secret start of a key, shown in listings.

    A generated key shows its type and key id (`rg_live_0BJJLE1VR_`), which are not secret. Any
    other key (an operator's choice, even one that starts like a generated key) shows its first
    four characters only: what follows may be the secret itself.
    """
    return _generated_prefix(key) or key[:CHOSEN_PREFIX_LENGTH] + "..."


def chosen_key_problem(key: str) -> str | None:
    """Why an operator-chosen key cannot be used, or None. The reason never quotes the key."""
    if len(key) < MIN_OPERATOR_KEY_LENGTH:
        return f"must be at least {MIN_OPERATOR_KEY_LENGTH} characters long (it has {len(key)})"
    if len(key) > MAX_OPERATOR_KEY_LENGTH:
        return f"must be at most {MAX_OPERATOR_KEY_LENGTH} characters long (it has {len(key)})"
    if not all("!" <= char <= "~" for char in key):
        return (
            "may only contain printable ASCII characters, without spaces (clients send it in an"
            " HTTP header)"
        )
    from relaygate.auth.jwt_tokens import looks_like_jwt  # jwt + cryptography: only when needed

    if looks_like_jwt(key):
        return "must not look like a JWT (the gateway would verify it as one)"
    return None
