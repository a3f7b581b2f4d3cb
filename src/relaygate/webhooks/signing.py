"""Standard Webhooks v1 signatures for outbound deliveries.

signature = base64(HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")), sent as `v1,<b64>`;
during a secret rotation every active secret signs and the header lists them all, space-separated,
so a receiver holding either secret accepts the message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh endpoint secret: `whsec_` and 32 random bytes in base64."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def decode_secret(secret: str) -> bytes:
    """The HMAC key of `secret`; ValueError (never quoting it) when malformed."""
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not base64 (after the whsec_ prefix)") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("webhook secret must decode to 24 to 64 bytes")
    return key


def new_message_id() -> str:
    """A message id for an event that is not tied to a job."""
    return "msg_" + secrets.token_urlsafe(20)


def sign(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one `v1,` signature per active secret."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1,"
        + base64.b64encode(hmac.new(decode_secret(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets_
    )


def headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header of a delivery attempt (fresh timestamp and signature, same id)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secrets_, msg_id, timestamp, body),
        "content-type": "application/json",
    }
