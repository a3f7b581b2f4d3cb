"""HMAC-signed requests, for servers (a WordPress site) that should never send their key.

The client sends three headers:

    x-relaygate-key-id: <key id>
    x-relaygate-timestamp: <unix seconds>
    x-relaygate-signature: v1=<hex HMAC-SHA256(signing secret, canonical)>

where canonical is `METHOD \\n path[?query] \\n timestamp \\n hex SHA-256 of the exact body`.
Several `v1=` values, comma-separated, are allowed (during a secret rotation any may match).
A request is refused if its timestamp is more than `max_skew_s` off either way, or if the same
signed request was already accepted within the window (replay).
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
REPLAY_NAMESPACE = "hmac"
_MAX_HEADER = 512
_MAX_TIMESTAMP_DIGITS = 12
_HEX = frozenset("0123456789abcdef")


def canonical_request(method: str, path: str, timestamp: str, body: bytes) -> bytes:
    """The bytes that are signed: `METHOD\\npath\\ntimestamp\\nhex sha256(body)` as UTF-8."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp}\n{digest}".encode()


def _mac(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign_request(
    secret: str | bytes,
    method: str,
    path: str,
    body: bytes,
    timestamp: int | None = None,
    *,
    key_id: str | None = None,
) -> dict[str, str]:
    """The signature headers for a request; with `key_id`, all three headers.

    A `str` secret is used as its UTF-8 bytes (the form the admin API hands out).
    """
    key = secret.encode() if isinstance(secret, str) else secret
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = _mac(key, canonical_request(method, path, stamp, body))
    headers = {HEADER_TIMESTAMP: stamp, HEADER_SIGNATURE: f"v1={signature}"}
    if key_id is not None:
        headers = {HEADER_KEY_ID: key_id, **headers}
    return headers


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


def _timestamp(stamp: str) -> int:
    # str.isdigit() alone accepts non-ASCII digits such as "²", which int() refuses.
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > _MAX_TIMESTAMP_DIGITS:
        raise AuthFailed("malformed timestamp")
    return int(stamp)


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
    if abs(now - _timestamp(stamp)) > max_skew_s:
        raise AuthFailed("timestamp outside the allowed skew")
    offered = _signatures(signature_header)
    if not offered:
        raise AuthFailed("malformed signature")
    secrets = secrets_for(key_id)
    if not secrets:
        raise AuthFailed("unknown key id or key without a signing secret")
    message = canonical_request(method, path, stamp, body)
    expected = [_mac(secret, message) for secret in secrets]
    # Compare every pair (no early exit on a match) with constant-time comparisons.
    matches = [hmac.compare_digest(sig, exp) for sig in offered for exp in expected]
    if not any(matches):
        raise AuthFailed("signature mismatch")
    # Only a valid signature reaches the replay cache, so forged requests cannot fill it.
    # The nonce is the key id and the digest of what the signature covers: during a rotation
    # the same request signed with the other secret (or with fewer `v1=` values) is the same
    # nonce, so dropping one of the offered signatures cannot turn a replay into a new request.
    nonce = f"{key_id}:{hashlib.sha256(message).hexdigest()}"
    if not await replay.first_use(REPLAY_NAMESPACE, nonce, 2 * max_skew_s):
        raise AuthFailed("replayed signature")
    return key_id
