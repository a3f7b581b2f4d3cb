"""Bootstrap and command-line key management: the default tenant, its key, the operator's admin
key, and `relaygate keys create/list/revoke`.

The admin API (relaygate.admin) manages everything else. Every write here bumps the policy
version, so running gateways pick the change up within their refresh interval.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.auth.keys import (
    chosen_key_problem,
    display_prefix,
    generate_key,
    hash_key,
    new_key_id,
)
from relaygate.store.errors import StoreRefusal
from relaygate.store.policy_version import bump_policy_version
from relaygate.store.tables import ApiKey
from relaygate.store.tenants import TenantStore

log = logging.getLogger("relaygate.store")

TENANT_KEY_VARIABLE = "RELAYGATE_DEFAULT_KEY"
ADMIN_KEY_VARIABLE = "RELAYGATE_ADMIN_KEY"


class ChosenKeyError(ValueError):
    """An operator-chosen key cannot be used; the message names the variable, never the key."""


def chosen_keys(environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The operator's chosen tenant and admin keys (unset or empty: None), checked."""
    tenant_key = environ.get(TENANT_KEY_VARIABLE) or None
    admin_key = environ.get(ADMIN_KEY_VARIABLE) or None
    check_chosen_keys(tenant_key, admin_key)
    return tenant_key, admin_key


def check_chosen_keys(tenant_key: str | None, admin_key: str | None) -> None:
    """Raise ChosenKeyError, naming the variable, if a chosen key cannot be used."""
    for variable, chosen in ((TENANT_KEY_VARIABLE, tenant_key), (ADMIN_KEY_VARIABLE, admin_key)):
        problem = chosen_key_problem(chosen) if chosen is not None else None
        if problem is not None:
            raise ChosenKeyError(f"{variable} {problem}")
    if tenant_key is not None and tenant_key == admin_key:
        raise ChosenKeyError(f"{TENANT_KEY_VARIABLE} and {ADMIN_KEY_VARIABLE} must differ")


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """Keys created by this start; plaintext only for keys generated now (shown once)."""

    tenant_key: str | None
    tenant_key_created: bool
    admin_key: str | None
    admin_key_created: bool
    revoked: tuple[str, ...] = ()  # variables naming a key an operator has revoked since


@dataclass(frozen=True, slots=True)
class _Bootstrapped:
    key: str | None
    created: bool
    revoked: bool = False


class KeyStore:
    """Reads and writes keys (and, for the bootstrap, the default tenant)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create_key(
        self,
        tenant_id: str | None,
        *,
        kind: str = "tenant",
        environment: str = "production",
        chosen: str | None = None,
        name: str | None = None,
    ) -> tuple[str, str]:
        """Store a new key (generated, or `chosen` by the operator); return (key, key id)."""
        if chosen is not None:
            problem = chosen_key_problem(chosen)
            if problem is not None:
                raise ChosenKeyError(f"keys {problem}")
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
                    name=name,
                )
            )
            await bump_policy_version(session)
        return key, key_id

    async def keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        """Every key (of one tenant), oldest first: rows as stored, which hold no key."""
        query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if tenant_id is not None:
            query = query.where(ApiKey.tenant_id == tenant_id)
        async with self._sessions() as session:
            return list((await session.execute(query)).scalars())

    async def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by id (idempotent: a revoked key keeps its first revocation time)."""
        async with self._sessions.begin() as session:
            row = await session.get(ApiKey, key_id)
            if row is None:
                raise StoreRefusal(f"no key with id {key_id!r} (`relaygate keys list` shows them)")
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
                await bump_policy_version(session)
        return row

    async def bootstrap(
        self, tenant_id: str, tenant_key: str | None, admin_key: str | None
    ) -> BootstrapResult:
        """Make sure the default tenant, a tenant key and an admin key exist.

        An operator-chosen key (from the environment) is stored if not yet known; otherwise a key
        is generated only when none exists, and returned so the caller can show it once. Safe to
        run by several processes at once: a key another process stored first counts as done.
        """
        check_chosen_keys(tenant_key, admin_key)
        await TenantStore(self._sessions).ensure_tenant(tenant_id)
        tenant = await self._bootstrap_key("tenant", tenant_id, tenant_key, TENANT_KEY_VARIABLE)
        admin = await self._bootstrap_key("admin", None, admin_key, ADMIN_KEY_VARIABLE)
        revoked = tuple(
            variable
            for variable, outcome in ((TENANT_KEY_VARIABLE, tenant), (ADMIN_KEY_VARIABLE, admin))
            if outcome.revoked
        )
        return BootstrapResult(tenant.key, tenant.created, admin.key, admin.created, revoked)

    async def _bootstrap_key(
        self, kind: str, owner: str | None, chosen: str | None, variable: str
    ) -> _Bootstrapped:
        if chosen is None:
            if await self._has_active_key(kind, owner):
                return _Bootstrapped(None, False)
            key, _ = await self.create_key(owner, kind=kind)
            return _Bootstrapped(key, True)
        row = await self._stored(chosen)
        if row is None:
            try:
                await self.create_key(owner, kind=kind, chosen=chosen)
                return _Bootstrapped(chosen, False)
            except IntegrityError:  # stored by another process at the same moment
                row = await self._stored(chosen)
                if row is None:
                    raise
        if row.kind != kind or row.tenant_id != owner:
            holder = (
                "the operator's admin key"
                if row.tenant_id is None
                else (f"a {row.kind} key of tenant {row.tenant_id!r}")
            )
            raise ChosenKeyError(
                f"{variable} is already stored as {holder} (key id {row.id}); choose another key"
            )
        if row.revoked_at is not None:
            log.warning(
                "%s names key %s, which was revoked: requests with it are refused", variable, row.id
            )
        return _Bootstrapped(chosen, False, revoked=row.revoked_at is not None)

    async def _stored(self, key: str) -> ApiKey | None:
        """The row of `key`, its listed prefix brought to today's rule (older versions stored
        too much of some chosen keys)."""
        async with self._sessions.begin() as session:
            query = select(ApiKey).where(ApiKey.key_hash == hash_key(key))
            row = (await session.execute(query)).scalars().first()
            if row is not None and row.display_prefix != display_prefix(key):
                row.display_prefix = display_prefix(key)
            return row

    async def _has_active_key(self, kind: str, tenant_id: str | None) -> bool:
        query = select(ApiKey.id).where(ApiKey.kind == kind, ApiKey.revoked_at.is_(None))
        query = query.where(
            ApiKey.tenant_id.is_(None) if tenant_id is None else ApiKey.tenant_id == tenant_id
        )
        async with self._sessions() as session:
            return (await session.execute(query.limit(1))).first() is not None
