"""Assemble the ASGI application: state is built in the lifespan and handed to the handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from relaygate.admin.app import create_admin_app
from relaygate.admin.context import AdminContext, AdminPrincipal, VaultAccess
from relaygate.api import (
    batches,
    chat,
    embeddings,
    errors,
    health,
    jobs,
    models,
    openapi,
    streams,
)
from relaygate.api.fastpath import FastPaths
from relaygate.api.middleware import RequestIdMiddleware
from relaygate.audit.log import AuditLog
from relaygate.audit.signer import CheckpointSigner
from relaygate.auth.replay import FallbackReplayGuard, MemoryReplayGuard, RedisReplayGuard
from relaygate.auth.signing_secrets import root_secret
from relaygate.auth.vault_requests import verify_vault_request
from relaygate.budgets import build_ledger
from relaygate.config.loader import ConfigError, load_config
from relaygate.config.schema import GatewayConfig
from relaygate.config.secrets import provider_secrets, vault_references
from relaygate.errors import GatewayError
from relaygate.jobs.service import JobService
from relaygate.jobs.store import JobStore
from relaygate.limits import build_limiter
from relaygate.observability.access import AccessLog
from relaygate.policy.alerts import AlertSink
from relaygate.privacy.pseudonym import Pseudonymizer
from relaygate.providers.base import Provider
from relaygate.providers.credentials import VaultCredentials
from relaygate.providers.registry import build_provider
from relaygate.routing.breaker import MemoryBreakers, SharedBreakers
from relaygate.routing.catalog import Catalog
from relaygate.routing.router import Router
from relaygate.server.background import Background
from relaygate.server.logs import configure_logging
from relaygate.server.recycle import Recycler
from relaygate.server.supervisor import RECYCLE_DIR_ENV, die_with_supervisor
from relaygate.state import Gateway
from relaygate.store.database import create_engine, migrate_exclusively, sessionmaker
from relaygate.store.snapshot import load_snapshot, policy_version
from relaygate.store.spend import spend_seed
from relaygate.streams.memory import MemoryStreamStore
from relaygate.streams.redis_store import RedisStreamStore
from relaygate.streams.store import StreamStore
from relaygate.tokens.counter import TokenCounter
from relaygate.usage.journal import journal_directory, replay_journal
from relaygate.usage.recorder import UsageRecorder
from relaygate.vault.broker import CredentialBroker
from relaygate.vault.kms.base import KeyEncryptionKey, KMSError
from relaygate.vault.kms.local import LocalKEK
from relaygate.vault.maintenance import run_maintenance
from relaygate.vault.master_key import load_master_key
from relaygate.vault.records import load_vault
from relaygate.vault.sealer import Sealer
from relaygate.webhooks.outbox import Outbox

log = logging.getLogger("relaygate")


def _redis_client(config: GatewayConfig) -> redis.Redis | None:
    url = config.server.redis_url
    if not url:
        return None
    # Short timeouts: an unreachable Redis must not hold requests; the fallbacks take over.
    # No client-side retries either (redis-py retries with backoff by default, seconds in all).
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),
    )


async def open_kek(config: GatewayConfig, environ: Mapping[str, str]) -> KeyEncryptionKey:
    """The key-encryption key the vault's data keys are wrapped with."""
    vault = config.vault
    if vault.kms == "vault_transit" and vault.vault_transit is not None:
        from relaygate.vault.kms.vault_transit import VaultTransitKEK

        settings = vault.vault_transit
        variable = settings.token.removeprefix("env:")
        token = environ.get(variable)
        if not token:
            raise ConfigError("vault", [f"vault.vault_transit.token: {variable} is not set"])
        transit = VaultTransitKEK(
            settings.url,
            token,
            settings.key,
            mount=settings.mount,
            namespace=settings.namespace,
            timeout_s=settings.timeout_s,
        )
        try:
            await transit.check()
        except KMSError:
            await transit.aclose()
            raise
        return transit
    if vault.kms == "aws_kms" and vault.aws_kms is not None:
        from relaygate.vault.kms.aws import AwsKmsKEK

        aws = vault.aws_kms
        return AwsKmsKEK(aws.key_id, region=aws.region, endpoint_url=aws.endpoint_url)
    return LocalKEK.open(environ, config.server.data_dir)


def _attach_vault(
    config: GatewayConfig,
    providers: Mapping[str, Provider],
    secrets: Mapping[str, Mapping[str, str]],
    broker: CredentialBroker,
) -> None:
    """Give every provider with `vault:` references a per-request credential source."""
    for pc in config.providers:
        refs = vault_references(pc)
        if not refs:
            continue
        provider = providers[pc.name]
        client = getattr(provider, "client", None)
        auth = getattr(provider, "auth_headers", None)
        if client is None or auth is None:
            raise ValueError(f"provider {pc.name!r} of type {pc.type!r} takes no credentials")
        client.vault = VaultCredentials(pc.name, secrets[pc.name], refs, broker, auth)


async def build_gateway(config: GatewayConfig, environ: Mapping[str, str]) -> Gateway:
    """Connect, migrate, load policy and build providers: everything before the first request."""
    server = config.server
    secrets = provider_secrets(config, environ)
    url = server.resolved_database_url()
    await migrate_exclusively(url)  # replicas and workers started together take turns
    engine = create_engine(url)
    sessions = sessionmaker(engine)
    # Usage a crashed sibling worker left in its journal (segments of live processes are skipped).
    journal = journal_directory(server.data_dir)
    await replay_journal(journal, sessions)
    sealer = Sealer(load_master_key(environ, server.data_dir, create=True))
    counter = await asyncio.to_thread(TokenCounter, server.data_dir / "tiktoken")
    providers = {p.name: build_provider(p, secrets[p.name], counter) for p in config.providers}
    audit = AuditLog(
        sessions,
        CheckpointSigner.open(environ, server.data_dir),
        config.audit.export_path or server.data_dir / "audit-checkpoints.jsonl",
    )
    kek = await open_kek(config, environ)
    broker = CredentialBroker(
        kek, await load_vault(sessions), audit, data_key_cache_s=config.vault.data_key_cache_s
    )
    _attach_vault(config, providers, secrets, broker)
    client = _redis_client(config)
    prefix = server.redis_prefix
    ledger = build_ledger(client, prefix, spend_seed(sessions), config.budgets.on_backend_error)
    replay = (
        FallbackReplayGuard(RedisReplayGuard(client, prefix), MemoryReplayGuard())
        if client is not None
        else MemoryReplayGuard()
    )
    background = Background()
    router = Router(config.routing)
    if client is not None:
        router.breakers = SharedBreakers(
            MemoryBreakers(config.routing.breaker, router.stats, router.clock),
            client,
            prefix,
            [f"{p.name}/{m.name}" for p in config.providers for m in p.models],
            time.time,
            router.clock,
        )
    return Gateway(
        config=config,
        catalog=Catalog(config, providers),
        counter=counter,
        usage=UsageRecorder(sessions, journal_dir=journal),
        engine=engine,
        sessions=sessions,
        providers=providers,
        policy=await load_snapshot(sessions, sealer),
        sealer=sealer,
        limiter=build_limiter(client, prefix, config.limits.on_backend_error),
        ledger=ledger,
        replay=replay,
        background=background,
        alerts=AlertSink(sessions, ledger, background),
        audit=audit,
        vault=broker,
        router=router,
        redis=client,
        pseudonym=Pseudonymizer.open(environ, server.data_dir) if config.privacy.hash_pii else None,
    )


async def reload_policy(gw: Gateway) -> None:
    """Load the policy snapshot now (after an admin write on this replica)."""
    gw.policy = await load_snapshot(gw.sessions, gw.sealer)
    gw.vault.snapshot = await load_vault(gw.sessions)


async def _refresh_policy(gw: Gateway) -> None:
    # Every replica polls the policy version; a change (e.g. a revoked key) is live within
    # one interval (at most 5 s by configuration).
    while True:
        await asyncio.sleep(gw.config.server.policy_refresh_s)
        try:
            if await policy_version(gw.sessions) != gw.policy.version:
                await reload_policy(gw)
        except Exception as exc:
            log.warning(
                "policy refresh failed (%s); serving the last known policy", type(exc).__name__
            )


def stream_store(config: GatewayConfig, client: redis.Redis | None) -> StreamStore:
    """Where resumable streams keep their events."""
    settings = config.streams
    use_redis = settings.store == "redis" or (settings.store == "auto" and client is not None)
    if use_redis:
        if client is None:
            raise ConfigError("streams", ["streams.store: redis needs server.redis_url"])
        # Blocking reads need a longer socket timeout than the 0.5 s of the shared client.
        blocking = redis.Redis.from_url(
            config.server.redis_url or "", socket_connect_timeout=0.5, socket_timeout=30
        )
        return RedisStreamStore(blocking, config.server.redis_prefix, settings.max_events)
    return MemoryStreamStore(settings.max_events)


def start_jobs(gw: Gateway, app: ASGIApp, *, runs_jobs: bool) -> JobService:
    """The jobs service of this process (`runs_jobs`: it also executes jobs)."""
    config = gw.config
    outbox = gw.outbox
    return JobService.build(
        JobStore(gw.sessions),
        config.jobs,
        app,
        lambda: gw.policy,
        on_finished=outbox.wake if outbox is not None else None,
        redis_url=config.server.redis_url,
        prefix=config.server.redis_prefix,
        runs_jobs=runs_jobs or config.jobs.queue == "embedded",
    )


def _root_signing_secret(environ: Mapping[str, str]) -> bytes | None:
    try:
        return root_secret(environ)
    except ValueError as exc:
        log.error("%s; the operator's vault signing root is not used", exc)
        return None


def _admin_context(gw: Gateway, root: bytes | None) -> AdminContext:
    def authenticate_admin(presented: str) -> AdminPrincipal | None:
        key = gw.policy.key_for(presented)
        if key is None or key.kind != "admin" or key.expired(time.time()):
            return None
        return AdminPrincipal(key_id=key.key_id, tenant_id=key.tenant_id or None)

    async def verify_signature(
        headers: Mapping[str, str], method: str, path: str, body: bytes
    ) -> str:
        return await verify_vault_request(
            headers,
            method,
            path,
            body,
            admin_key=gw.policy.admin_key,
            root=root,
            replay=gw.replay,
            now=time.time(),
        )

    return AdminContext(
        sessions=gw.sessions,
        sealer=gw.sealer,
        routes=frozenset(r.name for r in gw.catalog.listed()),
        reload_policy=lambda: reload_policy(gw),
        flush_usage=gw.usage.flush,
        authenticate_admin=authenticate_admin,
        vault=VaultAccess(
            kek=gw.vault.kek,
            audit=gw.audit,
            defaults=gw.config.vault,
            verify_signature=verify_signature,
            clear_cache=gw.vault.clear_cache,
            settle_s=2 * gw.config.server.policy_refresh_s + 1,
        ),
        audit=gw.audit,
    )


def create_app(
    config: GatewayConfig, environ: Mapping[str, str] | None = None, *, worker: bool = False
) -> RequestIdMiddleware:
    """The ASGI app for `config`; `worker`: the app of `relaygate worker`, which always runs
    jobs (and serves no socket)."""
    env = dict(os.environ if environ is None else environ)
    contexts: list[AdminContext] = []
    access = AccessLog() if config.logging.access_log else None

    def admin_context() -> AdminContext:
        return contexts[0]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gw = await build_gateway(config, env)
        app.state.gateway = gw
        gw.usage.on_record = access.on_usage if access is not None else None
        contexts.append(_admin_context(gw, _root_signing_secret(env)))
        gw.usage.start()
        gw.streams = stream_store(config, gw.redis)
        gw.outbox = Outbox(gw.sessions, gw.sealer, config.webhooks)
        contexts[0].outbox = gw.outbox
        gw.jobs = start_jobs(gw, app, runs_jobs=worker or config.jobs.run_in_gateway)
        await gw.jobs.start()
        tasks = [
            asyncio.create_task(_refresh_policy(gw), name="policy-refresh"),
            asyncio.create_task(
                gw.audit.run(config.audit.flush_interval_s, config.audit.checkpoint_interval_s),
                name="audit-flush",
            ),
            asyncio.create_task(
                run_maintenance(gw, lambda: reload_policy(gw)), name="vault-maintenance"
            ),
        ]
        tasks.append(asyncio.create_task(gw.outbox.run(), name="webhook-outbox"))
        if isinstance(gw.router.breakers, SharedBreakers):
            tasks.append(asyncio.create_task(gw.router.breakers.run(), name="breaker-sync"))
        flags = env.get(RECYCLE_DIR_ENV)
        if flags and config.server.recycle.enabled and not worker:
            recycler = Recycler(config.server.recycle, Path(flags), busy_check(gw, outer))
            tasks.append(asyncio.create_task(recycler.run(), name="worker-recycle"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await gw.jobs.aclose()
            if gw.streams is not None:
                await gw.streams.aclose()
            await gw.background.aclose()
            await gw.audit.aclose()
            await gw.vault.kek.aclose()
            await gw.usage.aclose()
            if access is not None:
                access.flush()  # the lines of the last requests (and of the final usage records)
            for provider in gw.providers.values():
                await provider.aclose()
            await gw.limiter.aclose()
            await gw.ledger.aclose()
            if gw.redis is not None:
                await gw.redis.aclose()
            await gw.engine.dispose()

    # The data-plane endpoints: dispatched directly by FastPaths, and in Starlette's table too
    # (background jobs call them through it).
    data_plane = {
        "/v1/chat/completions": chat.chat_completions,
        "/v1/embeddings": embeddings.embeddings,
    }
    app = Starlette(
        routes=[
            *(Route(path, handler, methods=["POST"]) for path, handler in data_plane.items()),
            Route("/v1/jobs", jobs.create_job, methods=["POST"]),
            Route("/v1/jobs", jobs.list_jobs, methods=["GET"]),
            Route("/v1/jobs/{job_id}", jobs.get_job, methods=["GET"]),
            Route("/v1/jobs/{job_id}/events", jobs.job_events, methods=["GET"]),
            Route("/v1/jobs/{job_id}/cancel", jobs.cancel_job, methods=["POST"]),
            Route("/v1/files", batches.upload_file, methods=["POST"]),
            Route("/v1/files", batches.list_files, methods=["GET"]),
            Route("/v1/files/{file_id}", batches.retrieve_file, methods=["GET"]),
            Route("/v1/files/{file_id}", batches.delete_file, methods=["DELETE"]),
            Route("/v1/files/{file_id}/content", batches.file_content, methods=["GET"]),
            Route("/v1/batches", batches.create_batch, methods=["POST"]),
            Route("/v1/batches", batches.list_batches, methods=["GET"]),
            Route("/v1/batches/{batch_id}", batches.retrieve_batch, methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", batches.cancel_batch, methods=["POST"]),
            Route("/v1/streams/{stream_id}", streams.resume, methods=["GET"]),
            Route("/v1/streams/{stream_id}", streams.stop, methods=["DELETE"]),
            Route("/v1/models", models.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", models.retrieve_model, methods=["GET"]),
            Route("/v1/openapi.json", openapi.endpoint(), methods=["GET"]),
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/readyz", health.readyz, methods=["GET"]),
            Mount("/admin/v1", app=create_admin_app(admin_context)),
        ],
        exception_handlers={
            GatewayError: errors.gateway_error,
            HTTPException: errors.http_error,
            Exception: errors.unexpected_error,
        },
        lifespan=lifespan,
    )
    outer = RequestIdMiddleware(FastPaths(app, data_plane), access)
    return outer


def busy_check(gw: Gateway, outer: RequestIdMiddleware) -> Callable[[], bool]:
    """For the recycler: has this worker had anything a replacement could not take over since
    the last look? A request in flight or begun since then, a job running here, a resumable
    stream held here. (Counting begun requests catches those that came and went between two
    looks, so "quiet" means no request at all.)"""
    seen = outer.started

    def busy() -> bool:
        nonlocal seen
        started, seen = seen, outer.started
        return (
            outer.in_flight > 0
            or outer.started != started
            or (gw.jobs is not None and gw.jobs.running_here() > 0)
            or (gw.streams is not None and gw.streams.held_here() > 0)
        )

    return busy


def create_app_from_env() -> ASGIApp:
    """Factory for the supervisor's workers: the config path comes from RELAYGATE_CONFIG."""
    die_with_supervisor()
    config = load_config(os.environ.get("RELAYGATE_CONFIG") or None)
    configure_logging(config)  # a spawned worker starts with no handlers
    return create_app(config)
