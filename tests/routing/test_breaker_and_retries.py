"""Circuit breakers, the retry budget, backoff and deadlines, through the Router."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as redis

from relaygate.config.schema import BreakerSettings, RoutingConfig
from relaygate.errors import UpstreamError
from relaygate.routing.breaker import MemoryBreakers, SharedBreakers
from relaygate.routing.catalog import Deployment
from relaygate.routing.router import Router
from relaygate.routing.scorer import Features
from tests.routing.helpers import Clock, deployment

FEATURES = Features(100, 100, 0)


def _router(clock: Clock, **routing: object) -> Router:
    config = RoutingConfig.model_validate(routing)
    return Router(config, clock=clock, sleep=clock.sleep, rng=random.Random(7))


def _failing(status: int = 502, retry_after: float | None = None) -> UpstreamError:
    return UpstreamError(status, "boom", retryable=True, retry_after=retry_after)


async def test_consecutive_failures_open_the_circuit_and_a_probe_closes_it() -> None:
    clock = Clock()
    router = _router(clock, breaker={"consecutive_failures": 3, "cooldown_s": 10})
    only = deployment("solo")
    calls: list[str] = []
    healthy = False

    async def call(d: Deployment) -> str:
        calls.append(d.provider_name)
        if not healthy:
            raise _failing()
        return "ok"

    for _ in range(3):
        with pytest.raises(UpstreamError):
            await router.run(router.plan("r", [only], FEATURES), call, clock.now + 60)
    # A single-deployment route cools down too: requests now fail fast, without calling.
    made = len(calls)
    with pytest.raises(UpstreamError) as info:
        router.plan("r", [only], FEATURES)
    assert info.value.status == 503 and info.value.code == "all_deployments_cooling_down"
    assert info.value.retry_after is not None and 1 <= info.value.retry_after <= 10
    assert len(calls) == made
    clock.now += 10.5
    healthy = True
    result, _ = await router.run(router.plan("r", [only], FEATURES), call, clock.now + 60)
    assert result == "ok" and router.breakers.cooling_for("solo/m") == 0


async def test_retry_after_is_a_cooldown_and_a_failed_probe_doubles_it() -> None:
    clock = Clock()
    router = _router(clock, breaker={"cooldown_s": 5, "max_cooldown_s": 100})
    router.breakers.record("a/m", False, retry_after=30)
    assert router.breakers.cooling_for("a/m") == pytest.approx(30)
    clock.now += 31
    assert router.breakers.allow("a/m")  # the half-open probe
    assert not router.breakers.allow("a/m")  # only one probe at a time
    router.breakers.record("a/m", False)
    assert router.breakers.cooling_for("a/m") == pytest.approx(60)  # doubled from 30
    clock.now += 61
    assert router.breakers.allow("a/m")
    router.breakers.record("a/m", False, retry_after=3)  # the provider's word wins
    assert router.breakers.cooling_for("a/m") == pytest.approx(3)


async def test_failover_then_backoff_on_the_same_deployment() -> None:
    clock = Clock()
    router = _router(clock, retry={"max_attempts": 3, "backoff_base_ms": 100})
    a, b = deployment("a"), deployment("b")
    seen: list[tuple[str, float]] = []

    async def call(d: Deployment) -> str:
        seen.append((d.provider_name, clock.now))
        if len(seen) < 3:
            raise _failing()
        return d.provider_name

    _, attempted = await router.run(router.plan("r", [a, b], FEATURES), call, clock.now + 60)
    assert attempted.attempts == 3
    (first, t0), (second, t1), (third, t2) = seen
    assert {first, second} == {"a", "b"} and t1 == t0  # failover: at once
    assert third == first and t2 > t1  # back to the first: after a backoff


async def test_client_errors_are_not_retried() -> None:
    clock = Clock()
    router = _router(clock)
    calls = 0

    async def call(d: Deployment) -> str:
        nonlocal calls
        calls += 1
        raise UpstreamError(400, "bad", retryable=False)

    with pytest.raises(UpstreamError):
        await router.run(router.plan("r", [deployment("a"), deployment("b")], FEATURES), call, 1e9)
    assert calls == 1


async def test_the_retry_budget_caps_extra_load_in_an_outage() -> None:
    clock = Clock()
    router = _router(
        clock,
        retry={"max_attempts": 5, "budget_ratio": 0.2, "budget_min_per_s": 0},
        breaker={"consecutive_failures": 10_000, "error_rate": 1.0},
    )
    plan_for = [deployment("a"), deployment("b")]
    attempts = 0

    async def call(d: Deployment) -> str:
        nonlocal attempts
        attempts += 1
        raise _failing()

    requests = 1000
    for _ in range(requests):
        with pytest.raises(UpstreamError):
            await router.run(router.plan("r", plan_for, FEATURES), call, clock.now + 60)
    # Without a budget: 5,000 attempts. With it: one each, plus 20% and the initial balance.
    assert attempts <= requests * 1.2 + 30, attempts


async def test_the_deadline_bounds_every_attempt() -> None:
    router = Router(RoutingConfig())
    loop = asyncio.get_running_loop()

    async def slow(d: Deployment) -> str:
        await asyncio.sleep(5)
        return "late"

    started = loop.time()
    with pytest.raises(UpstreamError) as info:
        await router.run(router.plan("r", [deployment("a")], FEATURES), slow, router.clock() + 0.2)
    assert info.value.status == 504 and loop.time() - started < 2


async def test_a_bounded_call_gets_the_time_left_and_ends_itself() -> None:
    clock = Clock()
    router = Router(RoutingConfig(attempt_timeout_s=30), clock=clock, sleep=clock.sleep)
    limits: list[float] = []

    async def call(d: Deployment, timeout_s: float) -> str:
        limits.append(timeout_s)
        if d.provider_name == "a":  # the provider's own timer ran out
            raise UpstreamError(504, "timed out", retryable=True, code="upstream_timeout")
        return "answer"

    plan = router.plan("r", [deployment("a"), deployment("b")], FEATURES)
    result, attempted = await router.run_bounded(plan, call, clock.now + 10)
    assert (result, attempted.deployment.provider_name, attempted.attempts) == ("answer", "b", 2)
    assert limits == [10, 10]  # the deadline is nearer than the attempt timeout
    assert router.stats.error_rate("a/m")[0] == 1.0  # the timeout counted against "a"


async def test_a_bounded_call_is_not_cut_off_by_the_router() -> None:
    # The call is trusted to end itself (the provider's timer): the router arms none beside it,
    # so a call that overruns its limit is the provider's bug, not cancelled here.
    router = Router(RoutingConfig())

    async def overrunning(d: Deployment, timeout_s: float) -> str:
        await asyncio.sleep(timeout_s + 0.2)
        return "late"

    plan = router.plan("r", [deployment("a")], FEATURES)
    result, _ = await router.run_bounded(plan, overrunning, router.clock() + 0.1)
    assert result == "late"
    with pytest.raises(UpstreamError) as info:  # the same call through `run` is cut off
        await router.run(plan, lambda d: overrunning(d, 0.1), router.clock() + 0.1)
    assert info.value.status == 504


async def test_replicas_share_open_circuits_through_redis(redis_url: str, prefix: str) -> None:
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    try:
        replicas = []
        for client in clients:
            router = Router(RoutingConfig())
            shared = SharedBreakers(
                MemoryBreakers(BreakerSettings(), router.stats, router.clock),
                client,
                prefix,
                ["a/m", "b/m"],
                __import__("time").time,
                router.clock,
            )
            router.breakers = shared
            replicas.append((router, shared))
        (one, shared_one), (two, shared_two) = replicas
        one.breakers.record("a/m", False, retry_after=20)
        assert two.breakers.cooling_for("a/m") == 0
        await shared_one.sync()
        await shared_two.sync()
        assert 15 < two.breakers.cooling_for("a/m") <= 20
        assert two.breakers.cooling_for("b/m") == 0
        plan = two.plan("r", [deployment("a"), deployment("b")], FEATURES)
        assert [d.provider_name for d in plan.deployments] == ["b"]
    finally:
        for client in clients:
            await client.aclose()
