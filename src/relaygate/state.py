"""The gateway's runtime state, built once at startup and passed to every handler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request

from relaygate.audit.log import AuditLog
from relaygate.auth.replay import ReplayGuard
from relaygate.budgets import SpendLedger
from relaygate.config.schema import GatewayConfig
from relaygate.jobs.service import JobService
from relaygate.limits import Limiter
from relaygate.policy.alerts import AlertSink
from relaygate.policy.snapshot import PolicySnapshot
from relaygate.privacy.pseudonym import Pseudonymizer
from relaygate.providers.base import Provider
from relaygate.routing.catalog import Catalog
from relaygate.routing.router import Router
from relaygate.server.background import Background
from relaygate.streams.store import StreamStore
from relaygate.tokens.counter import TokenCounter
from relaygate.usage.recorder import UsageRecorder
from relaygate.vault.broker import CredentialBroker
from relaygate.vault.sealer import Sealer
from relaygate.webhooks.outbox import Outbox


@dataclass(slots=True)
class Gateway:
    """Everything a request needs, held in memory: no handler waits on the database."""

    config: GatewayConfig
    catalog: Catalog
    counter: TokenCounter
    usage: UsageRecorder
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    providers: dict[str, Provider]
    policy: PolicySnapshot
    sealer: Sealer
    limiter: Limiter
    ledger: SpendLedger
    replay: ReplayGuard
    background: Background
    alerts: AlertSink
    audit: AuditLog
    vault: CredentialBroker
    router: Router
    redis: Any = None
    pseudonym: Pseudonymizer | None = None
    jobs: JobService | None = None
    outbox: Outbox | None = None
    streams: StreamStore | None = None

    def end_user_id(self, value: str | None) -> str | None:
        """The end user as recorded: the value itself, or its pseudonym with `hash_pii`."""
        if value is None or self.pseudonym is None:
            return value
        return self.pseudonym(value)


def gateway(request: Request) -> Gateway:
    """The gateway state of the app serving `request`."""
    state: Gateway = request.app.state.gateway
    return state
