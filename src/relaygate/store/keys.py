"""Bootstrap and CLI key creation: the default tenant, its key and the operator's admin key.

The admin API (relaygate.admin) manages everything else. Every write here bumps the policy
version, so running gateways pick the change up within their refresh interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.auth.keys import (
    MIN_OPERATOR_KEY_LENGTH,
    display_prefix,
    generate_key,
    hash_key,
    new_key_id,
)
from relaygate.store.tables import ApiKey, Environment, PolicyVersion, Tenant


class KeyTooShortError(ValueError):
    """An operator-chosen key is shorter than the minimum."""


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """Keys created by this start; plaintext only for keys generated now (shown once)."""

    tenant_key: str | None
    tenant_key_created: bool
    admin_key: str | None
    admin_key_created: bool


class KeyStore:
    """Reads and writes tenants and keys."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def ensure_tenant(self, tenant_id: str, environment: str = "production") -> None:
        """Create the tenant and its environment if they do not exist."""
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            if await session.get(Tenant, tenant_id) is None:
                session.add(Tenant(id=tenant_id, name=tenant_id, created_at=now))
                await session.flush()
            if await session.get(Environment, (tenant_id, environment)) is None:
                session.add(Environment(tenant_id=tenant_id, name=environment, created_at=now))

    async def create_key(
        self,
        tenant_id: str | None,
        *,
        kind: str = "tenant",
        environment: str = "production",
        chosen: str | None = None,
    ) -> tuple[str, str]:
        """Store a new key (generated, or `chosen` by the operator); return (key, key id)."""
        if chosen is not None:
            if len(chosen) < MIN_OPERATOR_KEY_LENGTH:
                raise KeyTooShortError(
                    f"keys must be at least {MIN_OPERATOR_KEY_LENGTH} characters long"
                )
            key, key_id = chosen, new_key_id()
        else:
            key, key_id = generate_key(environment, admin=kind == "admin")
        async with self._sessions.begin() as session:
            session.add(
                ApiKey(
                    id=key_id,
                    tenant_id=tenant_id,
                    environment=environment,
                    kind=kind,
                    key_hash=hash_key(key),
                    display_prefix=display_prefix(key),
                    created_at=datetime.now(UTC),
                )
            )
            bump = update(PolicyVersion).values(version=PolicyVersion.version + 1)
            await session.execute(bump.where(PolicyVersion.id == 1))
        return key, key_id

    async def _has_key(self, kind: str, tenant_id: str | None, key: str | None) -> bool:
        query = select(ApiKey.id).where(ApiKey.kind == kind, ApiKey.revoked_at.is_(None))
        if tenant_id is not None:
            query = query.where(ApiKey.tenant_id == tenant_id)
        if key is not None:
            query = query.where(ApiKey.key_hash == hash_key(key))
        async with self._sessions() as session:
            return (await session.execute(query.limit(1))).first() is not None

    async def bootstrap(
        self, tenant_id: str, tenant_key: str | None, admin_key: str | None
    ) -> BootstrapResult:
        """Make sure the default tenant, a tenant key and an admin key exist.

        An operator-chosen key (from the environment) is stored if not yet known; otherwise a key
        is generated only when none exists, and returned so the caller can show it once.
        """
        await self.ensure_tenant(tenant_id)
        results: dict[str, tuple[str | None, bool]] = {}
        for kind, chosen, owner in (("tenant", tenant_key, tenant_id), ("admin", admin_key, None)):
            if chosen is not None:
                if not await self._has_key(kind, owner, chosen):
                    await self.create_key(owner, kind=kind, chosen=chosen)
                results[kind] = (chosen, False)
            elif await self._has_key(kind, owner, None):
                results[kind] = (None, False)
            else:
                key, _ = await self.create_key(owner, kind=kind)
                results[kind] = (key, True)
        return BootstrapResult(*results["tenant"], *results["admin"])
