"""Choose, call, retry and fail over: the routing decision of every request.

`plan` filters and scores a route's deployments for a request; `run` tries them in order. A
retryable failure moves on to the next candidate at once; once every candidate has failed, the
next round starts after a jittered exponential backoff (at least the provider's Retry-After), as
long as the retry budget allows, `retry.max_attempts` is not reached and the request's deadline
has time left. Attempts that say something about the deployment (a success, a provider fault)
feed its latency statistics and circuit breaker; a caller's or tenant's fault never does
(routing/outcome.py). For streams
the call is "open the stream and wait for its first chunk", so a failover can never splice two
answers: nothing has reached the client before that.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from relaygate.config.schema import RoutingConfig
from relaygate.errors import UpstreamError
from relaygate.routing.breaker import Breakers, MemoryBreakers
from relaygate.routing.catalog import Deployment
from relaygate.routing.outcome import Outcome, classify
from relaygate.routing.retry import RetryBudget, backoff_s
from relaygate.routing.scorer import Features, Plan, score
from relaygate.routing.stats import DeploymentStats

T = TypeVar("T")
log = logging.getLogger("relaygate.routing")


@dataclass(slots=True)
class Attempted:
    """Which deployment answered and how many attempts it took."""

    deployment: Deployment
    attempts: int


class Router:
    """One per process: statistics, breakers and the retry budget are shared by its requests."""

    def __init__(
        self,
        config: RoutingConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        breakers: Breakers | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # jitter, not security
        self.stats = DeploymentStats(
            config.latency_samples,
            config.breaker.window_s,
            clock,
            config.slowdown_half_life_s,
            config.latency_max_age_s,
        )
        self.breakers: Breakers = breakers or MemoryBreakers(config.breaker, self.stats, clock)
        self.budget = RetryBudget(config.retry.budget_ratio, config.retry.budget_min_per_s, clock)

    def plan(
        self,
        route: str,
        deployments: Sequence[Deployment],
        features: Features,
        latency_slo_ms: float | None = None,
    ) -> Plan:
        """The candidates for this request, best first; UpstreamError if none can serve it."""
        plan = score(
            route, deployments, features, self.config, self.stats, self.breakers, latency_slo_ms
        )
        if plan.candidates:
            return plan
        reasons = set(plan.skipped.values())
        if reasons == {"context"}:
            raise UpstreamError(
                400,
                f"the prompt ({features.prompt_tokens} tokens) and max output do not fit the"
                f" context window of any deployment of '{route}'",
                retryable=False,
                code="context_length_exceeded",
                param="messages",
            )
        if "circuit_open" in reasons:
            wait = min((self.breakers.cooling_for(d.key) for d in deployments), default=1.0)
            raise UpstreamError(
                503,
                f"every deployment of '{route}' is cooling down after failures",
                retryable=False,
                retry_after=max(1.0, wait),
                code="all_deployments_cooling_down",
            )
        raise UpstreamError(
            400,
            f"no deployment of '{route}' fits this request's cost cap",
            retryable=False,
            code="cost_cap_exceeded",
        )

    async def run(
        self,
        plan: Plan,
        call: Callable[[Deployment], Awaitable[T]],
        deadline: float,
        request_id: str | None = None,
    ) -> tuple[T, Attempted]:
        """The first successful call, with retries and failover; the last error otherwise.
        Each attempt is cut off by a timer at the request's deadline (or the attempt timeout)."""

        async def timed(deployment: Deployment, timeout_s: float) -> T:
            async with asyncio.timeout(timeout_s):
                return await call(deployment)

        return await self.run_bounded(plan, timed, deadline, request_id)

    async def run_bounded(
        self,
        plan: Plan,
        call: Callable[[Deployment, float], Awaitable[T]],
        deadline: float,
        request_id: str | None = None,
    ) -> tuple[T, Attempted]:
        """As `run`, for a call that ends itself within the seconds it is given (a provider's
        `chat` or `embed` with `timeout_s`: a retryable 504 or a `TimeoutError` when they run
        out): the provider's own timer bounds the wait, and the router sets none beside it.

        What each failure allows is decided by `routing.outcome`: a provider fault is retried
        (other deployments first, then after a backoff, within the retry budget); a credential
        fault moves on to the next deployment once, as no retry; anything else is raised at once.
        Each move to another deployment is logged with `request_id` and the reason.
        """
        retry = self.config.retry
        self.budget.deposit()
        candidates = plan.deployments
        last: UpstreamError | None = None  # the last provider fault
        refused: UpstreamError | None = None  # the last credential fault
        unusable: set[int] = set()  # deployments whose credential this request cannot use
        previous: tuple[Deployment, Outcome, UpstreamError] | None = None
        attempts = 0
        index = 0
        tried: set[int] = set()
        while attempts < retry.max_attempts:
            deployment = self._next(candidates, index, unusable)
            if deployment is None:
                break
            index = candidates.index(deployment) + 1
            if previous is not None and previous[1] is Outcome.PROVIDER_FAULT:
                # A retry: bounded by the budget, and after a backoff once every candidate failed.
                if not self.budget.withdraw():
                    self.breakers.release(deployment.key)
                    break
                if id(deployment) in tried:
                    pause = backoff_s(
                        attempts, retry.backoff_base_ms, retry.backoff_max_ms, self._rng
                    )
                    if last is not None and last.retry_after:
                        pause = max(pause, last.retry_after)
                    if self.clock() + pause >= deadline:
                        self.breakers.release(deployment.key)
                        break
                    await self._sleep(pause)
            remaining = deadline - self.clock()
            if remaining <= 0:
                self.breakers.release(deployment.key)
                break
            if previous is not None:
                _log_failover(request_id, previous[0], deployment, previous[2])
            attempts += 1
            tried.add(id(deployment))
            try:
                result = await self._attempt(deployment, call, remaining, plan.features.bucket)
            except UpstreamError as exc:
                outcome = classify(exc)
                if outcome is Outcome.CREDENTIAL_FAULT:
                    unusable.add(id(deployment))
                    refused = exc
                elif outcome is Outcome.PROVIDER_FAULT:
                    last = exc
                else:
                    raise
                previous = (deployment, outcome, exc)
                continue
            return result, Attempted(deployment, attempts)
        if last is not None:
            raise last
        if refused is not None:
            raise refused
        raise UpstreamError(
            504,
            "the request's deadline passed before any attempt",
            retryable=False,
            code="deadline_exceeded",
        )

    def _next(
        self, candidates: list[Deployment], start: int, unusable: set[int]
    ) -> Deployment | None:
        """The next candidate from `start` (wrapping around) whose circuit lets a request in,
        skipping those whose credential this request cannot use."""
        for offset in range(len(candidates)):
            deployment = candidates[(start + offset) % len(candidates)]
            if id(deployment) not in unusable and self.breakers.allow(deployment.key):
                return deployment
        return None

    async def _attempt(
        self,
        deployment: Deployment,
        call: Callable[[Deployment, float], Awaitable[T]],
        remaining: float,
        bucket: int,
    ) -> T:
        name = deployment.key
        limit = remaining
        if self.config.attempt_timeout_s is not None:
            limit = min(limit, self.config.attempt_timeout_s)
        started = self.clock()
        try:
            result = await call(deployment, limit)
        except BaseException as exc:
            # Only a provider fault counts against the deployment (routing/outcome.py).
            retry_after = exc.retry_after if isinstance(exc, UpstreamError) else None
            self._observe(name, bucket, None, classify(exc), retry_after)
            if isinstance(exc, TimeoutError):
                raise UpstreamError(
                    504,
                    f"provider {deployment.provider_name!r} did not answer within the deadline",
                    retryable=True,
                    code="upstream_timeout",
                ) from None
            raise
        self._observe(name, bucket, self.clock() - started, Outcome.SUCCESS, None)
        return result

    def _observe(
        self,
        name: str,
        bucket: int,
        seconds: float | None,
        outcome: Outcome,
        retry_after: float | None,
    ) -> None:
        if not outcome.counts:
            # Not evidence about the deployment: if this attempt was a half-open probe, the
            # next request probes instead (the circuit neither closes nor opens for it).
            self.breakers.release(name)
            return
        ok = outcome is Outcome.SUCCESS
        self.stats.observe(name, bucket, seconds, ok)
        self.breakers.record(name, ok, None if ok else retry_after)


def _log_failover(
    request_id: str | None, source: Deployment, target: Deployment, error: UpstreamError
) -> None:
    """One line per move to another deployment (never a secret: codes and names only)."""
    log.info(
        "failover request_id=%s from=%s to=%s reason=%s status=%d",
        request_id or "-",
        source.key,
        target.key,
        error.code or "upstream_error",
        error.status,
    )
