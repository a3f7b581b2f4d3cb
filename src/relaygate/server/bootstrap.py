"""First-start work done once, before any worker starts: migrate, create the default keys."""

from __future__ import annotations

import os
from collections.abc import Mapping

from relaygate.config.schema import GatewayConfig
from relaygate.store.database import create_engine, migrate_if_behind, sessionmaker
from relaygate.store.keys import BootstrapResult, KeyStore, chosen_keys
from relaygate.store.startup_lock import startup_lock
from relaygate.usage.journal import journal_directory, replay_journal
from relaygate.vault.master_key import load_master_key


async def bootstrap(config: GatewayConfig, environ: Mapping[str, str]) -> BootstrapResult:
    """Migrate the database and make sure the default tenant, its key and an admin key exist.

    Replicas started together on an empty database take turns (store/startup_lock.py): the first
    migrates and stores the keys, the others find both done."""
    url = config.server.resolved_database_url()
    tenant_key, admin_key = chosen_keys(environ)  # refused before anything is written
    # Created here, before any worker starts, so workers only ever read it.
    load_master_key(environ, config.server.data_dir, create=True)
    engine = create_engine(url)
    try:
        async with startup_lock(url):
            await migrate_if_behind(url)
            result = await KeyStore(sessionmaker(engine)).bootstrap(
                config.server.default_tenant,
                tenant_key=tenant_key,
                admin_key=admin_key,
            )
        await replay_journal(journal_directory(config.server.data_dir), sessionmaker(engine))
        return result
    finally:
        await engine.dispose()


def environ() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ
