"""Choose, call, retry and fail over: the routing decision of every request.

`plan` filters and scores a route's deployments for a request; `run` tries them in order. A
retryable failure moves on to the next candidate at once; once every candidate has failed, the
next round starts after a jittered exponential backoff (at least the provider's Retry-After), as
long as the retry budget allows, `retry.max_attempts` is not reached and the request's deadline
has time left. Every attempt feeds the latency statistics and the circuit breakers. For streams
the call is "open the stream and wait for its first chunk", so a failover can never splice two
answers: nothing has reached the client before that.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from relaygate.config.schema import RoutingConfig
from relaygate.errors import UpstreamError
from relaygate.routing.breaker import Breakers, MemoryBreakers
from relaygate.routing.catalog import Deployment
from relaygate.routing.retry import RetryBudget, backoff_s
from relaygate.routing.scorer import Features, Plan, score
from relaygate.routing.stats import DeploymentStats

T = TypeVar("T")


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
        self, plan: Plan, call: Callable[[Deployment], Awaitable[T]], deadline: float
    ) -> tuple[T, Attempted]:
        """The first successful call, with retries and failover; the last error otherwise.
        Each attempt is cut off by a timer at the request's deadline (or the attempt timeout)."""

        async def timed(deployment: Deployment, timeout_s: float) -> T:
            async with asyncio.timeout(timeout_s):
                return await call(deployment)

        return await self.run_bounded(plan, timed, deadline)

    async def run_bounded(
        self, plan: Plan, call: Callable[[Deployment, float], Awaitable[T]], deadline: float
    ) -> tuple[T, Attempted]:
        """As `run`, for a call that ends itself within the seconds it is given (a provider's
        `chat` or `embed` with `timeout_s`: a retryable 504 or a `TimeoutError` when they run
        out): the provider's own timer bounds the wait, and the router sets none beside it."""
        retry = self.config.retry
        self.budget.deposit()
        candidates = plan.deployments
        last: UpstreamError | None = None
        attempts = 0
        index = 0
        tried: set[int] = set()
        while attempts < retry.max_attempts:
            deployment = self._next(candidates, index)
            if deployment is None:
                break
            index = candidates.index(deployment) + 1
            if attempts:
                if not self.budget.withdraw():
                    break
                if id(deployment) in tried:  # every candidate failed once: back off first
                    pause = backoff_s(
                        attempts, retry.backoff_base_ms, retry.backoff_max_ms, self._rng
                    )
                    if last is not None and last.retry_after:
                        pause = max(pause, last.retry_after)
                    if self.clock() + pause >= deadline:
                        break
                    await self._sleep(pause)
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            attempts += 1
            tried.add(id(deployment))
            try:
                result = await self._attempt(deployment, call, remaining, plan.features.bucket)
            except UpstreamError as exc:
                if not exc.retryable:
                    raise
                last = exc
                continue
            return result, Attempted(deployment, attempts)
        if last is None:
            raise UpstreamError(
                504,
                "the request's deadline passed before any attempt",
                retryable=False,
                code="deadline_exceeded",
            )
        raise last

    def _next(self, candidates: list[Deployment], start: int) -> Deployment | None:
        """The next candidate from `start` (wrapping around) whose circuit lets a request in."""
        for offset in range(len(candidates)):
            deployment = candidates[(start + offset) % len(candidates)]
            if self.breakers.allow(deployment.key):
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
        except TimeoutError:
            self._observe(name, bucket, None, False, None)
            raise UpstreamError(
                504,
                f"provider {deployment.provider_name!r} did not answer within the deadline",
                retryable=True,
                code="upstream_timeout",
            ) from None
        except UpstreamError as exc:
            # A client error (bad request) says nothing about the provider's health.
            healthy = not exc.retryable
            self._observe(name, bucket, None, healthy, None if healthy else exc.retry_after)
            raise
        except asyncio.CancelledError:
            raise
        self._observe(name, bucket, self.clock() - started, True, None)
        return result

    def _observe(
        self, name: str, bucket: int, seconds: float | None, ok: bool, retry_after: float | None
    ) -> None:
        self.stats.observe(name, bucket, seconds, ok)
        self.breakers.record(name, ok, retry_after)
