"""Key material for the admin tests: issuer keys of every accepted and refused kind."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from relaygate.store.tables import UsageRecord, WebhookMessage


def _public(private_key: Any) -> str:
    pem: bytes = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


@cache
def rsa_private(bits: int = 2048) -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def rsa_public_pem(bits: int = 2048) -> str:
    return _public(rsa_private(bits))


def rsa_private_pem() -> str:
    pem: bytes = rsa_private(2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode()


def ec_public_pem(curve: ec.EllipticCurve | None = None) -> str:
    return _public(ec.generate_private_key(curve or ec.SECP256R1()))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs_secret(size: int = 32) -> tuple[bytes, str]:
    """A random HS256 secret and its base64url form (what the admin API takes)."""
    raw = secrets.token_bytes(size)
    return raw, b64url(raw)


def usage_row(
    request_id: str,
    at: datetime | None = None,
    *,
    tenant: str = "acme",
    key: str = "k1",
    user: str | None = "u1",
    model: str = "sim-small",
    route: str = "fast",
    provider: str = "simulator",
    environment: str = "production",
    cost: float = 0.0,
    status: int = 200,
    prompt: int = 10,
    completion: int = 5,
    cached: int = 0,
) -> UsageRecord:
    """One ledger row as the usage recorder writes it."""
    return UsageRecord(
        request_id=request_id,
        created_at=at or datetime.now(UTC),
        tenant_id=tenant,
        environment=environment,
        key_id=key,
        end_user=user,
        endpoint="chat",
        route=route,
        provider=provider,
        model=model,
        stream=False,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        cost_usd=cost,
        latency_ms=1.0,
        status=status,
        outcome="ok" if status < 400 else "error",
    )


def webhook_message_row(message_id: str, tenant: str, endpoint_id: str) -> WebhookMessage:
    """A delivered webhook message, as the outbox leaves it."""
    now = datetime.now(UTC)
    return WebhookMessage(
        id=message_id,
        tenant_id=tenant,
        endpoint_id=endpoint_id,
        url="https://wp.example/hooks",
        event_type="job.succeeded",
        payload="{}",
        status="delivered",
        attempts=1,
        next_attempt_at=now,
        created_at=now,
        delivered_at=now,
    )
