"""HMAC-signed requests, for servers (a WordPress site) that should never send their key.

The client sends three headers:

    x-relaygate-key-id: <key id>
    x-relaygate-timestamp: <unix seconds>
    x-relaygate-signature: v1=<hex HMAC-SHA256(signing secret, canonical)>

where canonical is `METHOD \\n path[?query] \\n timestamp \\n hex SHA-256 of the exact body`.
Several `v1=` values, comma-separated, are allowed (during a secret rotation any may match).
A request is refused if its timestamp is more than `max_skew_s` off either way, or if the same
signature was already accepted within the window (replay).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence

from relaygate.auth.failure import AuthFailed
from relaygate.auth.replay import ReplayGuard

HEADER_KEY_ID = "x-relaygate-key-id"
HEADER_TIMESTAMP = "x-relaygate-timestamp"
HEADER_SIGNATURE = "x-relaygate-signature"
MAX_SKEW_S = 300.0
_MAX_HEADER = 512
_HEX = frozenset("0123456789abcdef")


def canonical_request(method: str, path: str, timestamp: str, body: bytes) -> bytes:
    """The bytes that are signed."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp}\n{digest}".encode()


def _mac(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign_request(
    secret: str | bytes, method: str, path: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The signature headers for a request (the key id header is the caller's to add)."""
    key = secret.encode() if isinstance(secret, str) else secret
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = _mac(key, canonical_request(method, path, stamp, body))
    return {HEADER_TIMESTAMP: stamp, HEADER_SIGNATURE: f"v1={signature}"}


def is_signed(headers: Mapping[str, str]) -> bool:
    """True if any of the signature headers is present (then the request must verify)."""
    return any(h in headers for h in (HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE))


def _signatures(value: str) -> list[str]:
    found = []
    for part in value.split(","):
        version, _, digest = part.strip().partition("=")
        if version == "v1" and len(digest) == 64 and set(digest) <= _HEX:
            found.append(digest)
    return found


async def verify_signed_request(
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    *,
    secrets_for: Callable[[str], Sequence[bytes]],
    replay: ReplayGuard,
    now: float,
    max_skew_s: float = MAX_SKEW_S,
) -> str:
    """The key id of a correctly signed, fresh, first-seen request; AuthFailed otherwise."""
    key_id = headers.get(HEADER_KEY_ID, "")
    stamp = headers.get(HEADER_TIMESTAMP, "")
    signature_header = headers.get(HEADER_SIGNATURE, "")
    if not key_id or not stamp or not signature_header:
        raise AuthFailed("signed request without all three signature headers")
    if max(len(key_id), len(stamp), len(signature_header)) > _MAX_HEADER:
        raise AuthFailed("oversized signature header")
    if not stamp.isdigit() or len(stamp) > 12:
        raise AuthFailed("malformed timestamp")
    if abs(now - int(stamp)) > max_skew_s:
        raise AuthFailed("timestamp outside the allowed skew")
    offered = _signatures(signature_header)
    if not offered:
        raise AuthFailed("malformed signature")
    secrets = secrets_for(key_id)
    if not secrets:
        raise AuthFailed("unknown key id or key without a signing secret")
    message = canonical_request(method, path, stamp, body)
    expected = [_mac(secret, message) for secret in secrets]
    matched = next(
        (sig for sig in offered for exp in expected if hmac.compare_digest(sig, exp)), None
    )
    if matched is None:
        raise AuthFailed("signature mismatch")
    # Only a valid signature reaches the replay cache, so forged requests cannot fill it.
    if not await replay.first_use("hmac", f"{key_id}:{matched}", 2 * max_skew_s):
        raise AuthFailed("replayed signature")
    return key_id
