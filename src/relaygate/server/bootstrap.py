"""First-start work done once, before any worker starts: migrate, create the default keys."""

from __future__ import annotations

import os
from collections.abc import Mapping

from relaygate.config.schema import GatewayConfig
from relaygate.store.database import create_engine, migrate_async, sessionmaker
from relaygate.store.keys import BootstrapResult, KeyStore
from relaygate.usage.journal import journal_directory, replay_journal
from relaygate.vault.master_key import load_master_key


async def bootstrap(config: GatewayConfig, environ: Mapping[str, str]) -> BootstrapResult:
    """Migrate the database and make sure the default tenant, its key and an admin key exist."""
    url = config.server.resolved_database_url()
    await migrate_async(url)
    # Created here, before any worker starts, so workers only ever read it.
    load_master_key(environ, config.server.data_dir, create=True)
    engine = create_engine(url)
    try:
        await replay_journal(journal_directory(config.server.data_dir), sessionmaker(engine))
        store = KeyStore(sessionmaker(engine))
        return await store.bootstrap(
            config.server.default_tenant,
            tenant_key=environ.get("RELAYGATE_DEFAULT_KEY") or None,
            admin_key=environ.get("RELAYGATE_ADMIN_KEY") or None,
        )
    finally:
        await engine.dispose()


async def create_key(config: GatewayConfig, tenant: str, environment: str) -> tuple[str, str]:
    """Create a new key for `tenant` (the tenant is created if needed)."""
    url = config.server.resolved_database_url()
    await migrate_async(url)
    engine = create_engine(url)
    try:
        store = KeyStore(sessionmaker(engine))
        await store.ensure_tenant(tenant, environment)
        return await store.create_key(tenant, environment=environment)
    finally:
        await engine.dispose()


def environ() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ
