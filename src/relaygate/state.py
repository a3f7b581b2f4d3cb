"""The gateway's runtime state, built once at startup and passed to every handler."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from relaygate.auth.keyring import Keyring
from relaygate.config.schema import GatewayConfig
from relaygate.providers.base import Provider
from relaygate.routing.catalog import Catalog
from relaygate.store.keys import KeyStore
from relaygate.tokens.counter import TokenCounter
from relaygate.usage.recorder import UsageRecorder


@dataclass(slots=True)
class Gateway:
    """Everything a request needs, held in memory: no handler touches the database."""

    config: GatewayConfig
    catalog: Catalog
    keyring: Keyring
    keys: KeyStore
    counter: TokenCounter
    usage: UsageRecorder
    engine: AsyncEngine
    providers: dict[str, Provider]


def gateway(request: Request) -> Gateway:
    """The gateway state of the app serving `request`."""
    state: Gateway = request.app.state.gateway
    return state
