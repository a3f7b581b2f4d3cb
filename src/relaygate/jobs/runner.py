"""Execute one job: claim it, keep the lease alive, run the request, record the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
from collections.abc import Callable
from dataclasses import replace

import orjson
from starlette.types import ASGIApp

from relaygate.config.schema import JobsConfig
from relaygate.errors import parse_retry_after
from relaygate.jobs import inprocess
from relaygate.jobs.store import JobStore, Outcome
from relaygate.policy.principal import Principal
from relaygate.policy.snapshot import PolicySnapshot
from relaygate.store.tables import Job

log = logging.getLogger("relaygate.jobs")

# Answers worth another attempt later: throttling, timeouts and upstream trouble.
RETRYABLE = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class JobRunner:
    """Runs jobs in this process; one instance per gateway or worker process."""

    def __init__(
        self,
        store: JobStore,
        app: ASGIApp,
        policy: Callable[[], PolicySnapshot],
        config: JobsConfig,
        on_finished: Callable[[], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.app = app
        self.policy = policy  # the current policy snapshot (it is replaced on reloads)
        self.config = config
        self.owner = f"{socket.gethostname()[:40]}:{secrets.token_hex(6)}"
        self.rng = rng or random.Random()
        self.running: dict[str, asyncio.Task[inprocess.Response]] = {}
        # Brokers may hand over more jobs than that at once (taskiq's in-memory broker does):
        # a job waiting here stays queued in its row, free for another worker to claim.
        self.slots = asyncio.Semaphore(config.concurrency)
        self.on_finished = on_finished

    async def run(self, job_id: str) -> None:
        """The queue's task: run `job_id` if it is still to be run (otherwise nothing)."""
        async with self.slots:
            await self._run(job_id)

    async def _run(self, job_id: str) -> None:
        job = await self.store.claim(job_id, self.owner, self.config.lease_s)
        if job is None:
            return
        principal = self._principal(job, self.policy())
        if principal is None:
            await self.store.finish(
                job,
                self.owner,
                _failed(None, "key_revoked", "the API key that created this job was revoked"),
            )
            return
        call = asyncio.create_task(
            inprocess.call(
                self.app, job.url, job.body.encode(), principal, f"{job.id}.{job.attempts}"
            ),
            name=f"job-{job.id}",
        )
        self.running[job.id] = call
        try:
            verdict = await self._supervise(job, call)
        finally:
            self.running.pop(job.id, None)
        if verdict == "lost":
            log.warning("job %s: lease lost to another worker; result discarded", job.id)
            return
        if verdict == "cancelled":
            await self.store.mark_cancelled(job.id, self.owner)
            return
        await self._record(job, call)
        if self.on_finished is not None:
            self.on_finished()

    async def _supervise(self, job: Job, call: asyncio.Task[inprocess.Response]) -> str:
        """Renew the lease until the call ends: 'done', 'lost' or 'cancelled'."""
        interval = self.config.lease_s / 3
        deadline = asyncio.get_running_loop().time() + self.config.attempt_timeout_s
        while True:
            done, _ = await asyncio.wait({call}, timeout=interval)
            if done:
                return "done"
            held, cancel = await self._renew(job.id)
            if not held or cancel or asyncio.get_running_loop().time() > deadline:
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await call
                if not held:
                    return "lost"
                return "cancelled" if cancel else "done"

    async def _renew(self, job_id: str) -> tuple[bool, bool]:
        try:
            return await self.store.renew(job_id, self.owner, self.config.lease_s)
        except Exception as exc:  # the database blinked: keep going, the lease has slack
            log.warning("job %s: lease renewal failed (%s)", job_id, type(exc).__name__)
            return True, False

    async def _record(self, job: Job, call: asyncio.Task[inprocess.Response]) -> None:
        if call.cancelled():
            outcome: Outcome | None = None
            error = {"code": "timeout", "message": "the attempt ran out of time"}
            status = None
            retry_after = None
        elif call.exception() is not None:
            exc = call.exception()
            log.warning("job %s: attempt failed (%s)", job.id, type(exc).__name__)
            outcome = None
            error = {"code": "internal_error", "message": "the attempt failed inside the gateway"}
            status = None
            retry_after = None
        else:
            response = call.result()
            status = response.status
            retry_after = response.headers.get("retry-after")
            outcome = _bounded(_outcome(response), self.config.max_result_bytes)
            error = outcome.error or {}
            if status not in RETRYABLE:
                await self.store.finish(job, self.owner, outcome)
                return
        if job.attempts >= job.max_attempts:
            message = (
                f"gave up after {job.attempts} attempts; last error:"
                f" {error.get('message', 'unknown')}"
            )
            dead = {"code": "retries_exhausted", "message": message, "last_error": error}
            final = outcome or _failed(status, "retries_exhausted", message)
            await self.store.finish(
                job, self.owner, replace(final, status="failed", result=None, error=dead)
            )
            return
        await self.store.retry_later(
            job.id, self.owner, self._delay(job.attempts, retry_after), error
        )

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Full-jitter exponential backoff, never sooner than the upstream's Retry-After."""
        cap = min(self.config.retry_max_s, self.config.retry_base_s * 2 ** (attempt - 1))
        delay = self.rng.uniform(cap / 2, cap)
        wanted = parse_retry_after(retry_after)
        if wanted is not None:
            delay = max(delay, min(wanted, self.config.retry_max_s))
        return delay

    @staticmethod
    def _principal(job: Job, snapshot: PolicySnapshot) -> Principal | None:
        if job.via == "jwt":
            return Principal(
                key_id=job.key_id,
                tenant_id=job.tenant_id,
                environment=job.environment,
                via="job",
                end_user=job.end_user,
            )
        key = snapshot.keys_by_id.get(job.key_id)
        if key is None:
            return None
        return Principal.of_key(key, "job")

    async def aclose(self) -> None:
        """Stop running jobs: their leases lapse and another worker (or a restart) reruns them."""
        for call in list(self.running.values()):
            call.cancel()


def _failed(status: int | None, code: str, message: str) -> Outcome:
    return Outcome(
        "failed", status, None, {"code": code, "message": message}, None, None, None, None
    )


def _bounded(outcome: Outcome, most: int) -> Outcome:
    """`outcome`, failed if its answer is larger than `most` bytes (`jobs.max_result_bytes`):
    what is stored and sent in the job's webhook stays bounded."""
    if outcome.result is None or len(outcome.result) <= most:
        return outcome
    message = f"the answer ({len(outcome.result)} bytes) is larger than the limit of {most} bytes"
    return replace(
        outcome,
        status="failed",
        result=None,
        error={"code": "result_too_large", "message": message},
    )


def _outcome(response: inprocess.Response) -> Outcome:
    """The job's result from the handler's answer (OpenAI's body as is, or its error object)."""
    report = response.report
    usage = None
    if "prompt_tokens" in report:
        usage = {
            "prompt_tokens": report["prompt_tokens"],
            "completion_tokens": report["completion_tokens"],
            "total_tokens": report["prompt_tokens"] + report["completion_tokens"],
        }
    route = response.headers.get("x-relaygate-route")
    provider = response.headers.get("x-relaygate-provider")
    model = response.headers.get("x-relaygate-model")
    served = f"{route} -> {provider}/{model}" if provider and model else route
    cost = report.get("cost_usd")
    provider_ms = report.get("provider_ms")
    if response.status == 200:
        return Outcome(
            "succeeded", 200, bytes(response.body), None, usage, cost, served, provider_ms
        )
    try:
        error = orjson.loads(response.body)["error"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        error = {"message": f"HTTP {response.status}"}
    return Outcome("failed", response.status, None, error, usage, cost, served, provider_ms)
