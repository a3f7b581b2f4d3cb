"""Jobs in one process: the store, the dispatcher, the runner (if this process runs jobs) and
the sweeper that puts lost work back in the queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta

from starlette.types import ASGIApp

from relaygate.batches.store import BatchStore
from relaygate.config.schema import JobsConfig
from relaygate.jobs.dispatch import TaskiqDispatcher, build_dispatcher
from relaygate.jobs.runner import JobRunner
from relaygate.jobs.store import JobStore, now_utc
from relaygate.policy.snapshot import PolicySnapshot

log = logging.getLogger("relaygate.jobs")


class JobService:
    """Owns the background tasks of the jobs feature for one process."""

    def __init__(
        self,
        store: JobStore,
        config: JobsConfig,
        dispatcher: TaskiqDispatcher,
        runner: JobRunner | None,
    ) -> None:
        self.store = store
        self.batches = BatchStore(store.sessions)
        self.config = config
        self.dispatcher = dispatcher
        self.runner = runner
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def build(
        cls,
        store: JobStore,
        config: JobsConfig,
        app: ASGIApp,
        policy: Callable[[], PolicySnapshot],
        *,
        redis_url: str | None,
        prefix: str,
        runs_jobs: bool,
        on_finished: Callable[[], None] | None = None,
    ) -> JobService:
        """Wire a service; `runs_jobs` says whether this process executes jobs;
        `on_finished` is called after a job finished here (the webhook outbox wakes up)."""
        runner = JobRunner(store, app, policy, config, on_finished) if runs_jobs else None
        dispatcher = build_dispatcher(
            config, redis_url, prefix, runner.run if runner is not None else None
        )
        return cls(store, config, dispatcher, runner)

    async def start(self) -> None:
        """Connect the queue and start the sweeper (every process sweeps: it is idempotent)."""
        await self.dispatcher.start()
        self._tasks.append(asyncio.create_task(self._sweep_forever(), name="job-sweeper"))

    def running_here(self) -> int:
        """Jobs this process is executing now (a worker is not recycled while it runs any)."""
        return len(self.runner.running) if self.runner is not None else 0

    async def submit(self, job_id: str) -> None:
        """Queue a new job; if the broker is unreachable the sweeper queues it later."""
        try:
            await self.dispatcher.kick(job_id)
        except Exception as exc:
            log.warning(
                "job %s: queueing failed (%s); the sweeper retries", job_id, type(exc).__name__
            )

    async def sweep(self, stale_s: float | None = None) -> int:
        """Expired leases back to the queue, then every due queued job not handed to the queue
        in the last `stale_s` seconds (default `requeue_after_s`: a backlog waiting in the
        broker is not queued twice)."""
        await self.store.expire_leases()
        if stale_s is None:
            stale_s = self.config.requeue_after_s
        due = await self.store.due(stale_s)
        for job_id in due:
            await self.dispatcher.kick(job_id)
        await self.batches.finalize_ready()
        await self.store.purge(now_utc() - timedelta(days=self.config.retention_days))
        return len(due)

    async def _sweep_forever(self) -> None:
        # An in-memory queue starts empty: at startup every due queued job is queued again.
        stale_s: float | None = 0.0 if self.dispatcher.embedded else None
        while True:
            try:
                await self.sweep(stale_s)
                stale_s = None
            except Exception as exc:
                log.warning("job sweep failed (%s)", type(exc).__name__)
            await asyncio.sleep(self.config.sweep_interval_s)

    async def aclose(self) -> None:
        """Stop sweeping and consuming; running jobs are left to their leases."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.runner is not None:
            await self.runner.aclose()
        await self.dispatcher.aclose()
