"""Converting between vault rows and the envelope's types, and loading the vault snapshot."""

from __future__ import annotations

import base64

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.store.tables import VaultGrant, VaultSecret, VaultVersion
from relaygate.vault.envelope import OPERATOR, SealedSecret, SecretAddress
from relaygate.vault.kms.base import WrappedKey
from relaygate.vault.snapshot import ActiveSecret, VaultSnapshot


def b64e(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64d(text: str) -> bytes:
    """The inverse of `b64e`."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def owner_of(tenant_id: str | None, environment: str | None) -> str:
    """The `owner` column: 'tenant/environment', or '*' for an operator secret."""
    return OPERATOR if tenant_id is None else f"{tenant_id}/{environment}"


def address_of(secret: VaultSecret, version: int) -> SecretAddress:
    """The associated data of one version of `secret`."""
    return SecretAddress(
        secret.tenant_id or OPERATOR, secret.environment or OPERATOR, secret.name, version
    )


def sealed_of(row: VaultVersion) -> SealedSecret:
    """The envelope stored in a version row."""
    return SealedSecret(
        WrappedKey(row.kek_id, row.kek_version, b64d(row.wrapped_key)), b64d(row.ciphertext)
    )


async def load_vault(sessions: async_sessionmaker[AsyncSession]) -> VaultSnapshot:
    """Every active version and grant (ciphertexts only)."""
    async with sessions() as session:
        rows = (
            await session.execute(
                select(VaultSecret, VaultVersion).join(
                    VaultVersion,
                    (VaultVersion.secret_id == VaultSecret.id)
                    & (VaultVersion.version == VaultSecret.current_version),
                )
            )
        ).all()
        grants = (await session.execute(select(VaultGrant))).scalars().all()
    owned: dict[tuple[str, str, str], ActiveSecret] = {}
    shared: dict[str, ActiveSecret] = {}
    for secret, version in rows:
        if version.state != "active":
            continue
        active = ActiveSecret(secret.id, address_of(secret, version.version), sealed_of(version))
        if secret.tenant_id is None:
            shared[secret.name] = active
        else:
            owned[(secret.tenant_id, secret.environment or "", secret.name)] = active
    return VaultSnapshot(
        owned=owned,
        shared=shared,
        grants=frozenset((g.secret_id, g.tenant_id, g.environment) for g in grants),
    )
