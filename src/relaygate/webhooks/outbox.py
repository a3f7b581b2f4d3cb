"""Delivering webhook messages: the table is the outbox, every process may send.

A message is claimed for one attempt by a conditional UPDATE (a short lease), so several
gateways and workers share the work without sending an attempt twice at the same moment. Each
attempt is signed afresh (new timestamp, same message id), logged without the receiver's body,
and followed by the next step of the schedule, a dead letter, or the endpoint's disabling.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Update, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.config.schema import WebhooksConfig
from relaygate.store.tables import WebhookAttempt, WebhookEndpoint, WebhookMessage
from relaygate.store.timestamps import utc
from relaygate.vault.sealer import Sealer
from relaygate.webhooks import schedule, sender, signing
from relaygate.webhooks.endpoints import active_secrets
from relaygate.webhooks.ssrf import Destination

log = logging.getLogger("relaygate.webhooks")

Deliver = Callable[..., Awaitable[sender.Outcome]]


@dataclass(frozen=True, slots=True)
class Step:
    """What happens to a message after one attempt."""

    status: str  # pending | delivered | dead
    next_attempt_at: datetime | None
    disable_endpoint: str | None  # the reason, when the endpoint is to be disabled


def refused(outcome: sender.Outcome) -> bool:
    """Whether the SSRF guard refused the attempt (nothing was sent)."""
    return (outcome.error or "").startswith("unsafe destination")


def health_update(endpoint_id: str, outcome: sender.Outcome, now: datetime) -> Update:
    """The endpoint's health after one attempt: counters, last error, the failure clock."""
    stmt = update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if outcome.kind == "delivered":
        return stmt.values(
            failing_since=None,
            consecutive_failures=0,
            delivered_count=WebhookEndpoint.delivered_count + 1,
            last_success_at=now,
        )
    return stmt.values(
        failing_since=func.coalesce(WebhookEndpoint.failing_since, now),
        consecutive_failures=WebhookEndpoint.consecutive_failures + 1,
        failed_count=WebhookEndpoint.failed_count + 1,
        refused_count=WebhookEndpoint.refused_count + (1 if refused(outcome) else 0),
        last_failure_at=now,
        last_error=(outcome.error or outcome.kind)[:200],
    )


class Outbox:
    """Sends due messages; `run` loops until cancelled."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sealer: Sealer,
        config: WebhooksConfig,
        *,
        deliver: Deliver = sender.deliver,
        rng: random.Random | None = None,
        own_addresses: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address] = frozenset(),
    ) -> None:
        self.sessions = sessions
        self.sealer = sealer
        self.config = config
        self.deliver = deliver
        self.rng = rng or random.Random()
        self.own_addresses = own_addresses
        self.delays: Sequence[float] | None = config.schedule_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due messages now (a job just finished in this process)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver due messages forever, `config.concurrency` at a time."""
        limit = asyncio.Semaphore(self.config.concurrency)
        running: set[asyncio.Task[None]] = set()
        while True:
            try:
                due = await self.claim(self.config.concurrency * 2)
            except Exception as exc:
                log.warning("webhook outbox query failed (%s)", type(exc).__name__)
                due = []
            for message_id in due:
                await limit.acquire()
                task = asyncio.create_task(self._send_released(message_id, limit))
                running.add(task)
                task.add_done_callback(running.discard)
            if not due:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_s)

    async def _send_released(self, message_id: str, limit: asyncio.Semaphore) -> None:
        try:
            await self.attempt(message_id)
        except Exception as exc:
            log.warning("webhook %s: attempt failed (%s)", message_id, type(exc).__name__)
        finally:
            limit.release()

    async def claim(self, limit: int) -> list[str]:
        """Due pending messages, each leased to this process for one attempt."""
        now = datetime.now(UTC)
        lease = now + timedelta(seconds=self.config.attempt_timeout_s * 2)
        free = or_(WebhookMessage.lease_expires_at.is_(None), WebhookMessage.lease_expires_at < now)
        async with self.sessions() as session, session.begin():
            candidates = list(
                await session.scalars(
                    select(WebhookMessage.id)
                    .where(
                        WebhookMessage.status == "pending",
                        WebhookMessage.next_attempt_at <= now,
                        free,
                    )
                    .order_by(WebhookMessage.next_attempt_at)
                    .limit(limit)
                )
            )
            # Another process may have taken some since the SELECT: the UPDATE checks again.
            claimed = []
            for message_id in candidates:
                taken = await session.execute(
                    update(WebhookMessage)
                    .where(
                        WebhookMessage.id == message_id,
                        WebhookMessage.status == "pending",
                        free,
                    )
                    .values(lease_expires_at=lease)
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(message_id)
        return claimed

    async def attempt(self, message_id: str) -> sender.Outcome | None:
        """One signed delivery attempt of a claimed message, logged, then the next step."""
        async with self.sessions() as session:
            message = await session.get(WebhookMessage, message_id)
            endpoint = await session.get(WebhookEndpoint, message.endpoint_id) if message else None
        if message is None:
            return None
        now = datetime.now(UTC)
        if endpoint is None or endpoint.disabled_at is not None:
            log.info("webhook message %s dropped: its endpoint is disabled", message.id)
            await self._settle(message, None, Step("dead", None, None), "endpoint disabled")
            return None
        body = message.payload.encode()
        headers = signing.headers(
            active_secrets(self.sealer, endpoint, now), message.id, int(time.time()), body
        )
        destination = Destination(
            allow_private=frozenset(
                ipaddress.ip_network(n) for n in (endpoint.allow_private or ())
            ),
            own_addresses=self.own_addresses,
        )
        outcome = await self.deliver(
            message.url,
            body,
            headers,
            destination=destination,
            timeout_s=self.config.attempt_timeout_s,
        )
        step = self.next_step(message, endpoint, outcome, now)
        await self._settle(message, outcome, step, outcome.error)
        if step.disable_endpoint is not None:
            await self._disable(endpoint.id, step.disable_endpoint)
        return outcome

    def next_step(
        self,
        message: WebhookMessage,
        endpoint: WebhookEndpoint,
        outcome: sender.Outcome,
        now: datetime,
    ) -> Step:
        """The message's state after `outcome` (attempt number `message.attempts + 1`)."""
        if outcome.kind == "delivered":
            return Step("delivered", None, None)
        if outcome.kind == "disable":
            return Step("dead", None, "the receiver answered 410 Gone")
        if outcome.kind == "failed":
            return Step("dead", None, None)
        failing_since = utc(endpoint.failing_since) if endpoint.failing_since else now
        if (now - failing_since).total_seconds() > self.config.disable_after_s:
            return Step("dead", None, "failing continuously for too long")
        delay = schedule.next_delay(message.attempts + 1, self.rng, self.delays)
        if delay is None:
            return Step("dead", None, None)
        delay = schedule.honour_retry_after(delay, outcome.retry_after)
        return Step("pending", now + timedelta(seconds=delay), None)

    async def _settle(
        self,
        message: WebhookMessage,
        outcome: sender.Outcome | None,
        step: Step,
        error: str | None,
    ) -> None:
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            if outcome is not None:
                session.add(
                    WebhookAttempt(
                        message_id=message.id,
                        attempt=message.attempts + 1,
                        at=now,
                        status_code=outcome.status,
                        latency_ms=round(outcome.latency_ms, 1),
                        outcome=outcome.kind,
                        error=(outcome.error or None) and outcome.error[:200],
                    )
                )
            await session.execute(
                update(WebhookMessage)
                .where(WebhookMessage.id == message.id)
                .values(
                    status=step.status,
                    attempts=message.attempts + (1 if outcome is not None else 0),
                    next_attempt_at=step.next_attempt_at or message.next_attempt_at,
                    lease_expires_at=None,
                    delivered_at=now if step.status == "delivered" else None,
                    last_error=(error or None) and error[:200],
                )
            )
            if outcome is not None:
                await session.execute(health_update(message.endpoint_id, outcome, now))
        if outcome is not None and outcome.kind != "delivered":
            log.warning(
                "webhook endpoint %s: attempt %d of message %s %s: %s",
                message.endpoint_id,
                message.attempts + 1,
                message.id,
                "refused" if refused(outcome) else "failed",
                outcome.error or outcome.kind,
            )

    async def _disable(self, endpoint_id: str, reason: str) -> None:
        log.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == endpoint_id)
                .values(disabled_at=datetime.now(UTC), disabled_reason=reason)
            )

    async def redeliver(self, message_id: str, tenant_id: str | None) -> bool:
        """Send a message again now (after a fix on the receiver's side), whatever its state."""
        async with self.sessions() as session, session.begin():
            query = update(WebhookMessage).where(WebhookMessage.id == message_id)
            if tenant_id is not None:
                query = query.where(WebhookMessage.tenant_id == tenant_id)
            done = await session.execute(
                query.values(
                    status="pending", next_attempt_at=datetime.now(UTC), lease_expires_at=None
                )
            )
        self.wake()
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]
