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
from relaygate.jobs.health import JobsHealth, age
from relaygate.jobs.runner import JobRunner
from relaygate.jobs.store import JobStore, now_utc
from relaygate.jobs.workers import NoRegistry, RedisWorkers, WorkerRegistry
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
        workers: WorkerRegistry | None = None,
    ) -> None:
        self.store = store
        self.batches = BatchStore(store.sessions)
        self.config = config
        self.dispatcher = dispatcher
        self.runner = runner
        self.workers: WorkerRegistry = workers or NoRegistry()
        self._tasks: list[asyncio.Task[None]] = []
        self._degraded_logged = False

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
        workers: WorkerRegistry | None = None
        url = config.redis_url or redis_url
        if not dispatcher.embedded and url:
            workers = RedisWorkers.connect(url, prefix)
        return cls(store, config, dispatcher, runner, workers)

    async def start(self) -> None:
        """Connect the queue and start the sweeper (every process sweeps: it is idempotent);
        a process that consumes the shared queue also announces itself."""
        await self.dispatcher.start()
        self._tasks.append(asyncio.create_task(self._sweep_forever(), name="job-sweeper"))
        if self.runner is not None and not self.dispatcher.embedded:
            self._tasks.append(asyncio.create_task(self._beat_forever(), name="job-heartbeat"))

    async def health(self) -> JobsHealth:
        """Whether queued jobs can be taken now, and the backlog (for `/readyz`)."""
        runs_here = self.runner is not None
        problem = None
        live: int | None = None
        last_seen: float | None = None
        try:
            sighting = await self.workers.sighting(self.config.worker_timeout_s)
            live, last_seen = sighting.live, sighting.last_seen
        except Exception as exc:
            problem = f"cannot read worker heartbeats ({type(exc).__name__})"
        queued: int | None = None
        oldest: float | None = None
        try:
            queued, since = await self.store.backlog()
            oldest = age(since.timestamp()) if since is not None else None
        except Exception as exc:
            problem = problem or f"cannot read the queue ({type(exc).__name__})"
        taken = runs_here or bool(live)
        return JobsHealth(
            state="ok" if taken else "degraded",
            queue="embedded" if self.dispatcher.embedded else "redis",
            runs_here=runs_here,
            workers=live,
            last_worker_seen_s=age(last_seen),
            worker_timeout_s=self.config.worker_timeout_s,
            queued=queued,
            oldest_queued_s=oldest,
            problem=None if taken else problem,
        )

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
            if self.runner is None:
                await self._watch_workers()
            await asyncio.sleep(self.config.sweep_interval_s)

    async def _watch_workers(self) -> None:
        """In a process that runs no jobs: say once when jobs wait and nothing takes them,
        and once when a worker is back."""
        health = await self.health()
        if health.state == "degraded" and health.queued and not self._degraded_logged:
            self._degraded_logged = True
            log.warning("jobs %s (start `relaygate worker`)", health.summary())
        elif health.state == "ok" and self._degraded_logged:
            self._degraded_logged = False
            log.info("jobs: a worker takes queued jobs again (%s)", health.summary())

    async def _beat_forever(self) -> None:
        assert self.runner is not None
        owner = self.runner.owner
        failing = False
        while True:
            try:
                await self.workers.beat(owner)
                if failing:
                    log.info("worker heartbeat: Redis reachable again")
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("worker heartbeat failed (%s)", type(exc).__name__)
                failing = True
            await asyncio.sleep(self.config.worker_heartbeat_s)

    async def aclose(self) -> None:
        """Stop sweeping and consuming; running jobs are left to their leases."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.runner is not None:
            if not self.dispatcher.embedded:  # withdraw first: gateways stop counting on us
                with contextlib.suppress(Exception):
                    await self.workers.leave(self.runner.owner)
            await self.runner.aclose()
        await self.workers.aclose()
        await self.dispatcher.aclose()
