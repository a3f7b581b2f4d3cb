"""The admin API in-process over a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.admin.app import create_admin_app
from relaygate.admin.context import AdminContext, AdminPrincipal, VaultAccess
from relaygate.audit.log import AuditLog
from relaygate.audit.signer import CheckpointSigner
from relaygate.auth.failure import AuthFailed
from relaygate.auth.keys import hash_key
from relaygate.config.schema import VaultConfig
from relaygate.store.database import create_engine, migrate_async, sessionmaker
from relaygate.store.keys import KeyStore
from relaygate.store.tables import ApiKey, PolicyVersion
from relaygate.vault.kms.local import LocalKEK
from relaygate.vault.sealer import Sealer

ROUTES = frozenset({"fast", "smart", "simulator/sim-small"})


def vault_access_for_tests(
    sessions: async_sessionmaker[AsyncSession], data_dir: Path
) -> VaultAccess:
    """Vault routes for admin-app tests: a real local KEK and audit log; signatures are never
    valid here (the vault's signed flows are tested against a real gateway in tests/vault)."""

    async def no_signature(*_args: object) -> str:
        raise AuthFailed("the admin test harness accepts no signature")

    return VaultAccess(
        kek=LocalKEK.open({}, data_dir),
        audit=AuditLog(sessions, CheckpointSigner.open({}, data_dir), None),
        defaults=VaultConfig(),
        verify_signature=no_signature,
        clear_cache=lambda: None,
    )


@dataclass
class AdminKeys:
    """What the gateway keeps in memory: active admin keys by hash, reloaded after each write."""

    by_hash: dict[str, tuple[AdminPrincipal, datetime | None]] = field(default_factory=dict)
    reloads: int = 0

    async def reload(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.reloads += 1
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(ApiKey).where(ApiKey.kind == "admin", ApiKey.revoked_at.is_(None))
                )
            ).scalars()
            self.by_hash = {
                r.key_hash: (
                    AdminPrincipal(r.id, r.tenant_id),
                    r.expires_at.replace(tzinfo=UTC) if r.expires_at else None,
                )
                for r in rows
            }

    def authenticate(self, presented: str) -> AdminPrincipal | None:
        found = self.by_hash.get(hash_key(presented))
        if found is None or (found[1] is not None and found[1] <= datetime.now(UTC)):
            return None
        return found[0]


@dataclass
class AdminHarness:
    """An admin app, its database, and keys to call it with."""

    context: AdminContext
    client: httpx.AsyncClient
    operator_key: str
    keys: AdminKeys
    flushes: list[int] = field(default_factory=list)

    @property
    def reloads(self) -> int:
        return self.keys.reloads

    @staticmethod
    def as_(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def call(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> httpx.Response:
        """One request, as the operator unless `key` is given."""
        return await self.client.request(
            method, path, json=body, headers=self.as_(key or self.operator_key)
        )

    async def ok(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        """A request that must succeed; its JSON (None for 204)."""
        response = await self.call(method, path, body, key)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    async def error(
        self, status: int, method: str, path: str, body: Any = None, key: str | None = None
    ) -> dict[str, Any]:
        """A request that must fail with `status`; its error object (OpenAI envelope)."""
        response = await self.call(method, path, body, key)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        envelope = response.json()
        assert set(envelope) == {"error"}
        assert set(envelope["error"]) == {"message", "type", "param", "code"}
        error: dict[str, Any] = envelope["error"]
        return error

    async def tenant(self, tenant_id: str, **fields: Any) -> dict[str, Any]:
        created: dict[str, Any] = await self.ok("POST", "/tenants", {"id": tenant_id, **fields})
        return created

    async def tenant_admin(self, tenant_id: str) -> str:
        """A new admin key of one tenant."""
        created = await self.ok("POST", f"/tenants/{tenant_id}/keys", {"kind": "admin"})
        key: str = created["key"]
        return key

    async def policy_version(self) -> int:
        async with self.context.sessions() as session:
            row = await session.get(PolicyVersion, 1)
        assert row is not None
        return row.version


@pytest.fixture
async def admin(database_url: str, tmp_path: Path) -> AsyncIterator[AdminHarness]:
    await migrate_async(database_url)
    engine = create_engine(database_url)
    sessions = sessionmaker(engine)
    operator_key, _ = await KeyStore(sessions).create_key(None, kind="admin")
    keys = AdminKeys()
    await keys.reload(sessions)
    keys.reloads = 0
    flushes: list[int] = []

    async def reload_policy() -> None:
        await keys.reload(sessions)

    async def flush_usage() -> int:
        flushes.append(1)
        return 0

    context = AdminContext(
        sessions=sessions,
        sealer=Sealer(os.urandom(32)),
        routes=ROUTES,
        reload_policy=reload_policy,
        flush_usage=flush_usage,
        authenticate_admin=keys.authenticate,
    )
    access = vault_access_for_tests(sessions, tmp_path)
    context.vault, context.audit = access, access.audit
    app = create_admin_app(lambda: context)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        yield AdminHarness(context, client, operator_key, keys, flushes)
    await engine.dispose()
