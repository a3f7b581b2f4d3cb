"""The vault's periodic work: retire versions past their grace period, raise rotation alerts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from relaygate.store.snapshot import bump_policy_version
from relaygate.store.tables import VaultSecret
from relaygate.vault.service import retire_due, rotation_status

if TYPE_CHECKING:
    from relaygate.state import Gateway

log = logging.getLogger("relaygate.vault")

SYSTEM = "system:vault"


async def maintain(gw: Gateway, reload: Callable[[], Awaitable[None]]) -> None:
    """One pass: retirements (then reload), and an alert per secret that became due/overdue."""
    now = datetime.now(UTC)
    async with gw.sessions.begin() as session:
        retired = await retire_due(session, now)
        if retired:
            await bump_policy_version(session)
    for secret_id, version in retired:
        await gw.audit.append(SYSTEM, "vault.retire", f"secret:{secret_id}@v{version}")
    if retired:
        gw.vault.clear_cache()
        await reload()
    alerts: list[tuple[VaultSecret, str, datetime]] = []
    async with gw.sessions.begin() as session:
        for secret in (await session.execute(select(VaultSecret))).scalars():
            due, status = rotation_status(secret, now)
            alerted = _utc(secret.alerted_at) if secret.alerted_at else None
            if status == "ok" or (alerted is not None and (status == "due" or alerted >= due)):
                continue
            secret.alerted_at = now
            alerts.append((secret, status, due))
    for secret, state, due in alerts:
        log.warning(
            "vault secret %s (%s) rotation %s since/at %s", secret.id, secret.name, state, due
        )
        await gw.audit.append(
            SYSTEM,
            f"vault.rotation_{state}",
            f"secret:{secret.id}",
            tenant_id=secret.tenant_id,
            detail={"name": secret.name, "due_at": due.isoformat(), "status": state},
        )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def run_maintenance(gw: Gateway, reload: Callable[[], Awaitable[None]]) -> None:
    """`maintain` every `vault.maintenance_interval_s` (background task)."""
    while True:
        await asyncio.sleep(gw.config.vault.maintenance_interval_s)
        try:
            await maintain(gw, reload)
        except Exception as exc:
            log.warning("vault maintenance failed (%s); will retry", type(exc).__name__)
