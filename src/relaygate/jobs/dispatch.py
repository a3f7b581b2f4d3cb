"""Handing job ids to workers through taskiq (decision 0016).

The queue carries only job ids; the job row says what to do and whether it is still to be done,
so a lost, duplicated or replayed queue message is harmless: claiming is a conditional UPDATE.
Embedded: taskiq's in-memory broker runs jobs inside the gateway. Scale-out: a Redis stream
with a consumer group feeds `relaygate worker` processes on any number of machines; a message
is acknowledged after its job ran, and one left unacknowledged by a dead worker is claimed again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from taskiq import AsyncBroker, InMemoryBroker
from taskiq.acks import AcknowledgeType
from taskiq.api import run_receiver_task

from relaygate.config.schema import JobsConfig

TASK_NAME = "relaygate.jobs.run"


class TaskiqDispatcher:
    """A taskiq broker; when `handler` is given this process also runs jobs."""

    def __init__(
        self,
        broker: AsyncBroker,
        handler: Callable[[str], Awaitable[None]] | None,
        concurrency: int,
        embedded: bool,
    ) -> None:
        self.broker = broker
        self.embedded = embedded
        self.concurrency = concurrency

        async def run_job(job_id: str) -> None:
            if handler is not None:
                await handler(job_id)

        self.task = broker.register_task(run_job, task_name=TASK_NAME)
        self.consuming = handler is not None
        self._receiver: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect; start consuming when this process runs jobs."""
        await self.broker.startup()
        if self.consuming and not self.embedded:
            self._receiver = asyncio.create_task(
                run_receiver_task(
                    self.broker,
                    max_async_tasks=self.concurrency,
                    max_prefetch=0,
                    ack_time=AcknowledgeType.WHEN_EXECUTED,
                ),
                name="job-receiver",
            )

    async def kick(self, job_id: str) -> None:
        """Queue `job_id`."""
        await self.task.kiq(job_id)

    async def aclose(self) -> None:
        """Stop the receiver (running jobs are cancelled; their leases expire and they rerun)."""
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._receiver
        await self.broker.shutdown()


def build_dispatcher(
    config: JobsConfig,
    redis_url: str | None,
    prefix: str,
    handler: Callable[[str], Awaitable[None]] | None,
) -> TaskiqDispatcher:
    """The embedded in-memory broker, or a Redis stream shared by every replica and worker."""
    if config.queue == "embedded":
        return TaskiqDispatcher(
            InMemoryBroker(max_async_tasks=config.concurrency, max_stored_results=1),
            handler,
            config.concurrency,
            embedded=True,
        )
    from taskiq_redis import RedisStreamBroker

    url = config.redis_url or redis_url
    if not url:
        raise ValueError("jobs.queue: redis needs jobs.redis_url or server.redis_url")
    broker = RedisStreamBroker(
        url,
        queue_name=f"{prefix}jobs",
        consumer_group_name=f"{prefix}workers",
        consumer_id="0",  # a group created after messages were queued still sees them
        idle_timeout=int(config.lease_s * 2000),
        unacknowledged_lock_timeout=config.lease_s,
        xread_block=1000,
    )
    return TaskiqDispatcher(broker, handler, config.concurrency, embedded=False)
