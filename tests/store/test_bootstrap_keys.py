"""The bootstrap of the default tenant and the configured keys is idempotent, also when several
processes run it at the same moment without the startup lock (a database shared with an older
version), and it refuses, by name, a configured key it cannot store."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from relaygate.store.database import create_engine, migrate_async, sessionmaker
from relaygate.store.keys import ChosenKeyError, KeyStore
from relaygate.store.tables import ApiKey, Environment, Tenant
from relaygate.store.tenants import TenantStore

TENANT_KEY = "bootstrap-tenant-key-0123456789abcdefghij"
ADMIN_KEY = "bootstrap-admin-key-0123456789abcdefghijk"


async def _bootstrap_in_own_engine(url: str) -> None:
    engine = create_engine(url)
    try:
        await KeyStore(sessionmaker(engine)).bootstrap("default", TENANT_KEY, ADMIN_KEY)
    finally:
        await engine.dispose()


async def test_concurrent_bootstraps_store_each_key_once(database_url: str) -> None:
    await migrate_async(database_url)
    await asyncio.gather(*(_bootstrap_in_own_engine(database_url) for _ in range(6)))
    engine = create_engine(database_url)
    try:
        async with sessionmaker(engine)() as session:
            keys = (await session.execute(select(ApiKey.kind, ApiKey.tenant_id))).all()
            tenants = await session.scalar(select(func.count()).select_from(Tenant))
            environments = (await session.execute(select(Environment.name))).scalars().all()
    finally:
        await engine.dispose()
    assert sorted(keys, key=lambda row: row[0]) == [("admin", None), ("tenant", "default")]
    assert tenants == 1 and environments == ["production"]


async def test_a_configured_key_stored_as_another_kind_is_refused_by_name(
    database_url: str,
) -> None:
    await migrate_async(database_url)
    engine = create_engine(database_url)
    try:
        store = KeyStore(sessionmaker(engine))
        await TenantStore(sessionmaker(engine)).create_tenant("acme")
        await store.create_key("acme", chosen=TENANT_KEY)
        with pytest.raises(ChosenKeyError) as refused:
            await store.bootstrap("default", TENANT_KEY, None)
        assert str(refused.value).startswith(
            "RELAYGATE_DEFAULT_KEY is already stored as a tenant key of tenant 'acme'"
        )
        with pytest.raises(ChosenKeyError, match="RELAYGATE_ADMIN_KEY is already stored"):
            await store.bootstrap("default", None, TENANT_KEY)
        assert TENANT_KEY not in str(refused.value)
    finally:
        await engine.dispose()


async def test_a_revoked_configured_key_stays_revoked(database_url: str) -> None:
    await migrate_async(database_url)
    engine = create_engine(database_url)
    try:
        store = KeyStore(sessionmaker(engine))
        first = await store.bootstrap("default", TENANT_KEY, ADMIN_KEY)
        assert first.revoked == ()
        tenant_key = next(k for k in await store.keys("default"))
        await store.revoke(tenant_key.id)
        again = await store.bootstrap("default", TENANT_KEY, ADMIN_KEY)
        assert again.revoked == ("RELAYGATE_DEFAULT_KEY",)
        rows = await store.keys()
        assert len(rows) == 2 and next(r for r in rows if r.kind == "tenant").revoked_at
    finally:
        await engine.dispose()
