"""Vault operations on the database: store, rotate, retire, rewrap. Callers own the transaction.

Values are encrypted before they reach a row and never decrypted here: rotation stores a new
version, retirement erases an old one, a KEK rotation rewraps data keys (the KMS does it without
the caller seeing them where it can). Only the request path (`broker.py`) decrypts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaygate.store.tables import VaultSecret, VaultVersion
from relaygate.vault.envelope import encrypt
from relaygate.vault.kms.base import KeyEncryptionKey, WrappedKey
from relaygate.vault.records import address_of, b64d, b64e, owner_of

DUE_SOON = timedelta(days=7)
RotationStatus = Literal["ok", "due", "overdue"]


def rotation_status(secret: VaultSecret, now: datetime) -> tuple[datetime, RotationStatus]:
    """When the next rotation is due, and whether it is due within a week or already overdue."""
    rotated = secret.rotated_at
    if rotated.tzinfo is None:  # SQLite hands back naive UTC
        rotated = rotated.replace(tzinfo=UTC)
    due = rotated + timedelta(days=secret.rotation_days)
    if now >= due:
        return due, "overdue"
    if now >= due - DUE_SOON:
        return due, "due"
    return due, "ok"


async def _store_version(
    session: AsyncSession,
    kek: KeyEncryptionKey,
    secret: VaultSecret,
    version: int,
    value: bytes,
    now: datetime,
) -> None:
    sealed = await encrypt(kek, address_of(secret, version), value)
    session.add(
        VaultVersion(
            secret_id=secret.id,
            version=version,
            state="active",
            kek_id=sealed.wrapped.kek_id,
            kek_version=sealed.wrapped.kek_version,
            wrapped_key=b64e(sealed.wrapped.blob),
            ciphertext=b64e(sealed.ciphertext),
            created_at=now,
        )
    )


async def create_secret(
    session: AsyncSession,
    kek: KeyEncryptionKey,
    *,
    secret_id: str,
    tenant_id: str | None,
    environment: str | None,
    name: str,
    value: bytes,
    description: str,
    rotation_days: int,
    grace_s: int,
    now: datetime,
) -> VaultSecret:
    """A new secret with version 1 active."""
    secret = VaultSecret(
        id=secret_id,
        owner=owner_of(tenant_id, environment),
        tenant_id=tenant_id,
        environment=environment if tenant_id is not None else None,
        name=name,
        description=description,
        rotation_days=rotation_days,
        grace_s=grace_s,
        current_version=1,
        created_at=now,
        rotated_at=now,
    )
    session.add(secret)
    await session.flush()
    await _store_version(session, kek, secret, 1, value, now)
    return secret


async def rotate_secret(
    session: AsyncSession,
    kek: KeyEncryptionKey,
    secret: VaultSecret,
    value: bytes,
    now: datetime,
    grace_s: int | None = None,
) -> int:
    """Store `value` as the new active version; the old one stays valid for the grace period
    (replicas still on the previous snapshot and requests in flight keep working)."""
    grace = secret.grace_s if grace_s is None else grace_s
    await session.execute(
        update(VaultVersion)
        .where(VaultVersion.secret_id == secret.id, VaultVersion.state == "active")
        .values(state="previous", retire_after=now + timedelta(seconds=grace))
    )
    version = secret.current_version + 1
    await _store_version(session, kek, secret, version, value, now)
    secret.current_version = version
    secret.rotated_at = now
    secret.alerted_at = None
    return version


async def retire_due(session: AsyncSession, now: datetime) -> list[tuple[str, int]]:
    """Retire every previous version whose grace period is over: its ciphertext is erased."""
    rows = (
        (
            await session.execute(
                select(VaultVersion).where(
                    VaultVersion.state == "previous", VaultVersion.retire_after <= now
                )
            )
        )
        .scalars()
        .all()
    )
    for row in rows:
        row.state = "retired"
        row.wrapped_key = ""
        row.ciphertext = ""
    return [(row.secret_id, row.version) for row in rows]


@dataclass(frozen=True, slots=True)
class Rewrapped:
    """What a KEK rotation did."""

    kek_id: str
    new_version: int
    rewrapped: int


async def rewrap_all(session: AsyncSession, kek: KeyEncryptionKey) -> int:
    """Rewrap every live data key under the KEK's current version; returns how many changed."""
    current = await kek.current_version()
    rows = (
        await session.execute(
            select(VaultSecret, VaultVersion)
            .join(VaultVersion, VaultVersion.secret_id == VaultSecret.id)
            .where(VaultVersion.state != "retired")
        )
    ).all()
    changed = 0
    for secret, row in rows:
        if row.kek_id == kek.kek_id and row.kek_version == current:
            continue
        aad = address_of(secret, row.version).associated_data()
        wrapped = await kek.rewrap(
            WrappedKey(row.kek_id, row.kek_version, b64d(row.wrapped_key)), aad
        )
        row.kek_id, row.kek_version, row.wrapped_key = (
            wrapped.kek_id,
            wrapped.kek_version,
            b64e(wrapped.blob),
        )
        changed += 1
    return changed
