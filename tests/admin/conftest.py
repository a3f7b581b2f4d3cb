"""The admin API in-process over a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from relaygate.admin.app import create_admin_app
from relaygate.admin.context import AdminContext, AdminPrincipal
from relaygate.auth.keys import hash_key
from relaygate.store.database import create_engine, migrate_async, sessionmaker
from relaygate.store.keys import KeyStore
from relaygate.vault.sealer import Sealer

ROUTES = frozenset({"fast", "smart", "simulator/sim-small"})


@dataclass
class AdminHarness:
    """An admin app, its database, and keys to call it with."""

    context: AdminContext
    client: httpx.AsyncClient
    operator_key: str
    reloads: list[int] = field(default_factory=list)

    def as_(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def tenant_admin(self, tenant: str) -> str:
        created = await self.client.post(
            f"/tenants/{tenant}/keys",
            json={"kind": "admin", "name": "site admin"},
            headers=self.as_(self.operator_key),
        )
        assert created.status_code == 201, created.text
        key: str = created.json()["key"]
        return key


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[AdminHarness]:
    await migrate_async(database_url)
    engine = create_engine(database_url)
    sessions = sessionmaker(engine)
    store = KeyStore(sessions)
    operator_key, operator_id = await store.create_key(None, kind="admin")
    reloads: list[int] = []
    admins: dict[str, AdminPrincipal] = {hash_key(operator_key): AdminPrincipal(operator_id, None)}

    async def reload_policy() -> None:
        # What the gateway does: reload admin keys from the database.
        from sqlalchemy import select

        from relaygate.store.tables import ApiKey

        reloads.append(1)
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(ApiKey).where(ApiKey.kind == "admin", ApiKey.revoked_at.is_(None))
                )
            ).scalars()
            admins.clear()
            admins.update({r.key_hash: AdminPrincipal(r.id, r.tenant_id) for r in rows})

    async def flush_usage() -> int:
        return 0

    context = AdminContext(
        sessions=sessions,
        sealer=Sealer(os.urandom(32)),
        routes=ROUTES,
        reload_policy=reload_policy,
        flush_usage=flush_usage,
        authenticate_admin=lambda key: admins.get(hash_key(key)),
    )
    app = create_admin_app(lambda: context)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        yield AdminHarness(context, client, operator_key, reloads)
    await engine.dispose()
