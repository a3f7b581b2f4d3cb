"""A delivery the SSRF guard refuses is logged at WARNING with the endpoint's id, counted, and
shown on the endpoint (SQLite and PostgreSQL). The endpoint here is one stored before
registration checked destinations (a loopback URL without `allow_private`): since then such an
endpoint is refused at registration, but old rows and names whose DNS answer changed still
reach the delivery-time guard."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from relaygate.config.schema import WebhooksConfig
from relaygate.store.database import create_engine, migrate_async, sessionmaker
from relaygate.store.tables import WebhookEndpoint, WebhookMessage
from relaygate.vault.sealer import Sealer
from relaygate.webhooks.endpoints import seal_secrets
from relaygate.webhooks.outbox import Outbox
from tests.support.servers import serve_in_thread
from tests.webhooks.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    hooks = Receiver()
    with serve_in_thread(hooks.app()) as url:
        yield hooks, url


async def test_a_refused_delivery_is_logged_counted_and_shown(
    database_url: str, receiver: tuple[Receiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    hooks, base = receiver
    await migrate_async(database_url)
    engine = create_engine(database_url)
    sessions = sessionmaker(engine)
    sealer = Sealer(os.urandom(32))
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        session.add(
            WebhookEndpoint(
                id="ep_old",
                tenant_id="acme",
                url=base + "/ok",
                description="",
                secrets=seal_secrets(sealer, "ep_old", [{"secret": SECRET, "expires_at": None}]),
                allow_private=None,
                created_at=now,
            )
        )
        await session.flush()
        session.add(
            WebhookMessage(
                id="msg_1",
                tenant_id="acme",
                endpoint_id="ep_old",
                url=base + "/ok/7",
                event_type="job.succeeded",
                payload="{}",
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    outbox = Outbox(sessions, sealer, WebhooksConfig(attempt_timeout_s=2))
    try:
        with caplog.at_level(logging.WARNING, logger="relaygate.webhooks"):
            outcome = await outbox.attempt("msg_1")
        assert outcome is not None and outcome.kind == "failed"
        async with sessions() as session:
            endpoint = await session.get(WebhookEndpoint, "ep_old")
            message = await session.get(WebhookMessage, "msg_1")
        assert endpoint is not None and message is not None
        assert message.status == "dead"
        assert (endpoint.refused_count, endpoint.failed_count, endpoint.consecutive_failures) == (
            1,
            1,
            1,
        )
        assert endpoint.last_error is not None
        assert endpoint.last_error.startswith("unsafe destination: 127.0.0.1: loopback")
        assert endpoint.last_failure_at is not None and endpoint.failing_since is not None
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        text = warnings[0].getMessage()
        assert "ep_old" in text and "msg_1" in text and "refused" in text and "loopback" in text
        assert SECRET not in caplog.text
        assert hooks.to("/ok/7") == []  # nothing was sent
    finally:
        await engine.dispose()
