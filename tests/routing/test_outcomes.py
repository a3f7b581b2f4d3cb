"""What counts against a deployment (routing/outcome.py), through the Router and its breakers."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import pytest
import redis.asyncio as redis

from relaygate.config.schema import BreakerSettings, RoutingConfig
from relaygate.errors import CredentialError, GatewayError, UpstreamError
from relaygate.routing.breaker import MemoryBreakers, SharedBreakers
from relaygate.routing.catalog import Deployment
from relaygate.routing.outcome import Outcome, classify
from relaygate.routing.router import Router
from relaygate.routing.scorer import Features
from tests.routing.helpers import Clock, deployment

FEATURES = Features(100, 100, 0)


def _router(clock: Clock, **routing: object) -> Router:
    config = RoutingConfig.model_validate(routing)
    return Router(config, clock=clock, sleep=clock.sleep, rng=random.Random(7))


def _not_granted() -> CredentialError:
    return CredentialError(403, "not granted", code="credential_not_granted")


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (CredentialError(403, "x", code="credential_not_granted"), Outcome.CREDENTIAL_FAULT),
        (CredentialError(503, "x", code="credential_unavailable"), Outcome.CREDENTIAL_FAULT),
        (CredentialError(403, "x", code="credential_rejected"), Outcome.CREDENTIAL_FAULT),
        (CredentialError(429, "x", code="credential_rate_limited"), Outcome.CREDENTIAL_FAULT),
        (UpstreamError(502, "x", retryable=True), Outcome.PROVIDER_FAULT),
        (UpstreamError(502, "upstream_auth_failed", retryable=True), Outcome.PROVIDER_FAULT),
        (UpstreamError(429, "x", retryable=True, retry_after=3), Outcome.PROVIDER_FAULT),
        (
            UpstreamError(502, "redirect / invalid first chunk", retryable=False),
            Outcome.PROVIDER_FAULT,
        ),
        (UpstreamError(504, "x", retryable=True), Outcome.PROVIDER_FAULT),
        (TimeoutError(), Outcome.PROVIDER_FAULT),
        (UpstreamError(400, "bad content", retryable=False), Outcome.REQUEST_FAULT),
        (UpstreamError(413, "too large", retryable=False), Outcome.REQUEST_FAULT),
        (UpstreamError(422, "unprocessable", retryable=False), Outcome.REQUEST_FAULT),
        (GatewayError(400, "cannot translate"), Outcome.REQUEST_FAULT),
        (asyncio.CancelledError(), Outcome.NOT_JUDGED),
        (ValueError("a gateway bug"), Outcome.NOT_JUDGED),
    ],
)
def test_every_failure_has_one_outcome(error: BaseException, outcome: Outcome) -> None:
    assert classify(error) is outcome


def test_only_successes_and_provider_faults_count() -> None:
    assert {o for o in Outcome if o.counts} == {Outcome.SUCCESS, Outcome.PROVIDER_FAULT}
    assert {o for o in Outcome if o.tries_another} == {
        Outcome.PROVIDER_FAULT,
        Outcome.CREDENTIAL_FAULT,
    }


async def test_credential_faults_never_open_a_circuit_or_touch_statistics() -> None:
    clock = Clock()
    router = _router(clock, breaker={"consecutive_failures": 2, "min_requests": 2})
    shared = deployment("shared")

    async def call(d: Deployment) -> str:
        raise _not_granted()

    for _ in range(50):
        with pytest.raises(CredentialError) as info:
            await router.run(router.plan("r", [shared], FEATURES), call, clock.now + 60)
        assert info.value.status == 403
    assert router.breakers.cooling_for("shared/m") == 0
    assert router.stats.error_rate("shared/m") == (0.0, 0)
    assert router.plan("r", [shared], FEATURES).deployments == [shared]


async def test_request_faults_never_count_and_are_not_retried() -> None:
    clock = Clock()
    router = _router(clock, breaker={"consecutive_failures": 2})
    a, b = deployment("a"), deployment("b")
    calls: list[str] = []

    async def call(d: Deployment) -> str:
        calls.append(d.provider_name)
        raise UpstreamError(400, "this request's content", retryable=False)

    for _ in range(20):
        with pytest.raises(UpstreamError):
            await router.run(router.plan("r", [a, b], FEATURES), call, clock.now + 60)
    assert len(calls) == 20  # one attempt each
    for name in ("a/m", "b/m"):
        assert router.breakers.cooling_for(name) == 0
        assert router.stats.error_rate(name) == (0.0, 0)


async def test_request_faults_do_not_dilute_a_failing_deployments_error_rate() -> None:
    clock = Clock()
    router = _router(clock, breaker={"consecutive_failures": 1000, "min_requests": 4})
    only = deployment("a")

    async def bad_content(d: Deployment) -> str:
        raise UpstreamError(400, "bad", retryable=False)

    async def down(d: Deployment) -> str:
        raise UpstreamError(502, "down", retryable=True)

    for index in range(40):
        call = down if index % 8 == 0 else bad_content  # outages among bad requests
        with pytest.raises(UpstreamError):
            await router.run(router.plan("r", [only], FEATURES), call, clock.now + 60)
    assert router.stats.error_rate("a/m") == (1.0, 4)  # the fifth found the circuit open
    assert router.breakers.cooling_for("a/m") > 0


async def test_a_credential_fault_moves_on_once_without_the_retry_budget() -> None:
    clock = Clock()
    # No retry budget at all: a provider fault would not be retried; a credential fault moves on.
    router = _router(clock, retry={"budget_ratio": 0, "budget_min_per_s": 0})
    while router.budget.withdraw():  # spend the initial balance
        pass
    a, b = deployment("a"), deployment("b")
    calls: list[str] = []

    async def call(d: Deployment) -> str:
        calls.append(d.provider_name)
        if d.provider_name == "a":
            raise _not_granted()
        return "served by b"

    result, attempted = await router.run(router.plan("r", [a, b], FEATURES), call, clock.now + 60)
    assert (result, attempted.deployment.provider_name) == ("served by b", "b")
    assert calls == ["a", "b"] and clock.now == 1000.0  # no backoff either
    assert router.stats.error_rate("a/m") == (0.0, 0)


async def test_a_deployment_whose_credential_failed_is_not_tried_again_in_that_request() -> None:
    clock = Clock()
    router = _router(clock, retry={"max_attempts": 6})
    a, b = deployment("a"), deployment("b")
    calls: list[str] = []

    async def call(d: Deployment) -> str:
        calls.append(d.provider_name)
        if d.provider_name == "a":
            raise _not_granted()
        raise UpstreamError(502, "down", retryable=True)

    with pytest.raises(UpstreamError) as info:
        await router.run(router.plan("r", [a, b], FEATURES), call, clock.now + 600)
    assert calls.count("a") == 1 and calls.count("b") >= 2
    assert info.value.status == 502  # the provider's failure explains more than the credential


@pytest.mark.parametrize(
    "ending",
    [_not_granted(), UpstreamError(400, "bad", retryable=False), ValueError("bug")],
    ids=["credential", "request", "bug"],
)
async def test_a_half_open_probe_that_says_nothing_is_released(ending: Exception) -> None:
    clock = Clock()
    router = _router(clock, breaker={"cooldown_s": 5})
    router.breakers.record("a/m", False, retry_after=5)
    clock.now += 6
    only = deployment("a")

    async def neutral(d: Deployment) -> str:
        raise ending

    with pytest.raises(type(ending)):
        await router.run(router.plan("r", [only], FEATURES), neutral, clock.now + 60)

    async def healthy(d: Deployment) -> str:
        return "ok"

    # The next request probes (it would be refused forever if the probe were never released).
    result, _ = await router.run(router.plan("r", [only], FEATURES), healthy, clock.now + 60)
    assert result == "ok" and router.breakers.cooling_for("a/m") == 0


async def test_a_cancelled_probe_is_released() -> None:
    router = Router(RoutingConfig())
    router.breakers.record("a/m", False, retry_after=0.5)
    await asyncio.sleep(0.55)
    only = deployment("a")
    started = asyncio.Event()

    async def hangs(d: Deployment) -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    task = asyncio.ensure_future(
        router.run(router.plan("r", [only], FEATURES), hangs, router.clock() + 60)
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert router.breakers.allow("a/m")  # the probe slot is free again


async def test_each_failover_is_logged_with_the_request_id_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    router = _router(clock)
    a, b, c = deployment("a"), deployment("b"), deployment("c")

    async def call(d: Deployment) -> str:
        if d.provider_name == "a":
            raise UpstreamError(502, "down", retryable=True, code="upstream_error")
        if d.provider_name == "b":
            raise _not_granted()
        return "ok"

    plan = router.plan("r", [a, b, c], FEATURES)
    with caplog.at_level(logging.INFO, logger="relaygate.routing"):
        await router.run(plan, call, clock.now + 60, request_id="req_abc")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("failover")]
    assert lines == [
        "failover request_id=req_abc from=a/m to=b/m reason=upstream_error status=502",
        "failover request_id=req_abc from=b/m to=c/m reason=credential_not_granted status=403",
    ]


async def test_credential_faults_are_never_shared_through_redis(
    redis_url: str, prefix: str
) -> None:
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    try:
        routers = []
        for client in clients:
            router = Router(RoutingConfig.model_validate({"breaker": {"consecutive_failures": 2}}))
            router.breakers = SharedBreakers(
                MemoryBreakers(BreakerSettings(consecutive_failures=2), router.stats, router.clock),
                client,
                prefix,
                ["a/m"],
                time.time,
                router.clock,
            )
            routers.append(router)
        one, two = routers
        only = deployment("a")

        async def refused(d: Deployment) -> str:
            raise _not_granted()

        for _ in range(10):
            with pytest.raises(CredentialError):
                await one.run(one.plan("r", [only], FEATURES), refused, one.clock() + 60)
        for router in routers:
            assert isinstance(router.breakers, SharedBreakers)
            await router.breakers.sync()
        assert await clients[0].get(prefix + "breaker:a/m") is None
        assert two.breakers.cooling_for("a/m") == 0 and one.breakers.cooling_for("a/m") == 0

        async def down(d: Deployment) -> str:
            raise UpstreamError(502, "down", retryable=True)

        for _ in range(2):  # a real outage still opens the circuit everywhere
            with pytest.raises(UpstreamError):
                await one.run(one.plan("r", [only], FEATURES), down, one.clock() + 60)
        for router in routers:
            assert isinstance(router.breakers, SharedBreakers)
            await router.breakers.sync()
        assert two.breakers.cooling_for("a/m") > 0
    finally:
        for client in clients:
            await client.aclose()
