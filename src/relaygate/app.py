"""Assemble the ASGI application: state is built in the lifespan and handed to the handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp

from relaygate.api import chat, embeddings, errors, health, models
from relaygate.api.middleware import RequestIdMiddleware
from relaygate.auth.keyring import Keyring
from relaygate.config.loader import load_config
from relaygate.config.schema import GatewayConfig
from relaygate.config.secrets import provider_secrets
from relaygate.errors import GatewayError
from relaygate.providers.registry import build_provider
from relaygate.routing.catalog import Catalog
from relaygate.state import Gateway
from relaygate.store.database import create_engine, migrate_async, sessionmaker
from relaygate.store.keys import KeyStore
from relaygate.tokens.counter import TokenCounter
from relaygate.usage.recorder import UsageRecorder

log = logging.getLogger("relaygate")

KEY_REFRESH_INTERVAL_S = 5.0


async def build_gateway(config: GatewayConfig, environ: Mapping[str, str]) -> Gateway:
    """Connect, migrate, load keys and build providers: everything before the first request."""
    secrets = provider_secrets(config, environ)
    url = config.server.resolved_database_url()
    await migrate_async(url)
    engine = create_engine(url)
    sessions = sessionmaker(engine)
    keys = KeyStore(sessions)
    counter = await asyncio.to_thread(TokenCounter, config.server.data_dir / "tiktoken")
    providers = {p.name: build_provider(p, secrets[p.name], counter) for p in config.providers}
    keyring = Keyring(await keys.active_entries())
    usage = UsageRecorder(sessions)
    return Gateway(
        config=config,
        catalog=Catalog(config, providers),
        keyring=keyring,
        keys=keys,
        counter=counter,
        usage=usage,
        engine=engine,
        providers=providers,
    )


async def _refresh_keys(gw: Gateway) -> None:
    # Revocations and new keys reach every replica within one interval.
    while True:
        await asyncio.sleep(KEY_REFRESH_INTERVAL_S)
        try:
            gw.keyring.replace(await gw.keys.active_entries())
        except Exception as exc:
            log.warning("key refresh failed (%s); serving the last known keys", type(exc).__name__)


def create_app(config: GatewayConfig, environ: Mapping[str, str] | None = None) -> ASGIApp:
    """The ASGI app for `config`."""
    env = dict(os.environ if environ is None else environ)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gw = await build_gateway(config, env)
        app.state.gateway = gw
        gw.usage.start()
        refresher = asyncio.create_task(_refresh_keys(gw), name="key-refresh")
        try:
            yield
        finally:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
            await gw.usage.aclose()
            for provider in gw.providers.values():
                await provider.aclose()
            await gw.engine.dispose()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat.chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings.embeddings, methods=["POST"]),
            Route("/v1/models", models.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", models.retrieve_model, methods=["GET"]),
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/readyz", health.readyz, methods=["GET"]),
        ],
        exception_handlers={
            GatewayError: errors.gateway_error,
            HTTPException: errors.http_error,
            Exception: errors.unexpected_error,
        },
        lifespan=lifespan,
    )
    return RequestIdMiddleware(app)


def create_app_from_env() -> ASGIApp:
    """Factory for multi-worker serving: the config path comes from RELAYGATE_CONFIG."""
    return create_app(load_config(os.environ.get("RELAYGATE_CONFIG") or None))
