"""Tenants and their environments, for the bootstrap and the `relaygate tenants` command.

The admin API (relaygate.admin.tenants) does the same over HTTP; both give a new tenant the
`production` environment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.store.errors import StoreRefusal
from relaygate.store.policy_version import bump_policy_version
from relaygate.store.tables import Environment, Tenant

DEFAULT_ENVIRONMENTS = ("production",)


@dataclass(frozen=True, slots=True)
class TenantView:
    """A tenant and the names of its environments."""

    id: str
    name: str
    created_at: datetime
    environments: tuple[str, ...]


def environments_with_defaults(extra: Iterable[str]) -> list[str]:
    """The default environments followed by `extra`, without repeats."""
    return list(dict.fromkeys([*DEFAULT_ENVIRONMENTS, *extra]))


class TenantStore:
    """Reads and writes tenants and environments."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def ensure_tenant(self, tenant_id: str) -> None:
        """Create the tenant with its default environments unless it exists (idempotent, also
        when another process creates it at the same moment)."""
        for attempt in range(2):
            try:
                async with self._sessions.begin() as session:
                    if await session.get(Tenant, tenant_id) is None:
                        await self._add(session, tenant_id, tenant_id, DEFAULT_ENVIRONMENTS)
                    else:
                        for name in DEFAULT_ENVIRONMENTS:
                            if await session.get(Environment, (tenant_id, name)) is None:
                                session.add(_environment(tenant_id, name))
                return
            except IntegrityError:
                if attempt:  # created concurrently, then still failing: a real conflict
                    raise

    async def create_tenant(
        self, tenant_id: str, name: str | None = None, environments: Iterable[str] = ()
    ) -> TenantView:
        """A new tenant with the default environments plus `environments`; refused if it exists."""
        names = environments_with_defaults(environments)
        try:
            async with self._sessions.begin() as session:
                if await session.get(Tenant, tenant_id) is not None:
                    raise StoreRefusal(f"tenant {tenant_id!r} already exists")
                row = await self._add(session, tenant_id, name or tenant_id, names)
                await bump_policy_version(session)
        except IntegrityError:
            raise StoreRefusal(f"tenant {tenant_id!r} already exists") from None
        return TenantView(row.id, row.name, row.created_at, tuple(names))

    async def add_environment(self, tenant_id: str, name: str) -> None:
        """Add an environment to an existing tenant; refused if the tenant is unknown or has it."""
        try:
            async with self._sessions.begin() as session:
                await self._require_tenant(session, tenant_id)
                if await session.get(Environment, (tenant_id, name)) is not None:
                    raise StoreRefusal(f"tenant {tenant_id!r} already has environment {name!r}")
                session.add(_environment(tenant_id, name))
                await bump_policy_version(session)
        except IntegrityError:
            raise StoreRefusal(f"tenant {tenant_id!r} already has environment {name!r}") from None

    async def require_environment(self, tenant_id: str, name: str) -> None:
        """Refuse unless the tenant exists and has the environment (the message names the fix)."""
        async with self._sessions() as session:
            await self._require_tenant(session, tenant_id)
            if await session.get(Environment, (tenant_id, name)) is None:
                known = ", ".join(await self._environment_names(session, tenant_id)) or "none"
                raise StoreRefusal(
                    f"tenant {tenant_id!r} has no environment {name!r} (it has: {known}); add it"
                    f" with `relaygate tenants add-environment {tenant_id} {name}`"
                )

    async def require_tenant(self, tenant_id: str) -> None:
        """Refuse unless the tenant exists."""
        async with self._sessions() as session:
            await self._require_tenant(session, tenant_id)

    async def tenants(self) -> list[TenantView]:
        """Every tenant, by id."""
        async with self._sessions() as session:
            rows = (await session.execute(select(Tenant).order_by(Tenant.id))).scalars().all()
            return [
                TenantView(
                    r.id, r.name, r.created_at, tuple(await self._environment_names(session, r.id))
                )
                for r in rows
            ]

    @staticmethod
    async def _add(
        session: AsyncSession, tenant_id: str, name: str, environments: Iterable[str]
    ) -> Tenant:
        row = Tenant(id=tenant_id, name=name, created_at=datetime.now(UTC))
        session.add(row)
        await session.flush()  # the tenant row first: environments refer to it
        for environment in environments:
            session.add(_environment(tenant_id, environment))
        return row

    @staticmethod
    async def _require_tenant(session: AsyncSession, tenant_id: str) -> None:
        if await session.get(Tenant, tenant_id) is None:
            raise StoreRefusal(
                f"no tenant {tenant_id!r}; create it with `relaygate tenants create {tenant_id}`"
                " (or pass --create-tenant)"
            )

    @staticmethod
    async def _environment_names(session: AsyncSession, tenant_id: str) -> list[str]:
        query = select(Environment.name).where(Environment.tenant_id == tenant_id)
        return list((await session.execute(query.order_by(Environment.name))).scalars())


def _environment(tenant_id: str, name: str) -> Environment:
    return Environment(tenant_id=tenant_id, name=name, created_at=datetime.now(UTC))
