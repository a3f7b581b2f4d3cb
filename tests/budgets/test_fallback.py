"""When Redis is unreachable: each replica counts on its own ("local") or refuses ("closed")."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from relaygate.budgets import (
    BudgetDecision,
    Charge,
    FallbackLedger,
    LedgerUnavailable,
    MemoryLedger,
    RedisLedger,
    Reservation,
    build_ledger,
    charges_for,
)
from tests.budgets.helpers import IDS, T0, Seed, rule
from tests.support.servers import free_port

CHARGES = charges_for([rule(1.0)], IDS, T0)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Switchable:
    """A real Redis ledger behind a switch: while `down`, every call fails as a dead Redis does."""

    def __init__(self, inner: RedisLedger) -> None:
        self.inner = inner
        self.down = False

    def _gate(self) -> None:
        if self.down:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379.")

    async def reserve(self, charges: Sequence[Charge], amount_usd: float) -> BudgetDecision:
        self._gate()
        return await self.inner.reserve(charges, amount_usd)

    async def extend(self, reservation: Reservation, extra_usd: float) -> Reservation | None:
        self._gate()
        return await self.inner.extend(reservation, extra_usd)

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        self._gate()
        await self.inner.settle(reservation, actual_usd)

    async def status(self, charge: Charge) -> tuple[float, float]:
        self._gate()
        return await self.inner.status(charge)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def dead_redis() -> AsyncIterator[redis.Redis]:
    """A client for a port nothing listens on; its URL carries a password."""
    client = redis.Redis.from_url(
        f"redis://:hunter2@127.0.0.1:{free_port()}/0",
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    yield client
    await client.aclose()


async def test_local_mode_enforces_the_cap_per_replica_and_warns_once(
    dead_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="relaygate.budgets")
    ledger = FallbackLedger(RedisLedger(dead_redis, "x:", Seed()), MemoryLedger(Seed()), "local")
    decisions = [await ledger.reserve(CHARGES, 0.4) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    first = decisions[0].reservation
    assert first is not None and first.backend == "memory"
    await ledger.settle(first, 0.1)
    assert await ledger.status(CHARGES[0]) == pytest.approx((0.1, 0.4))
    assert not ledger.healthy
    assert ledger.attempts == 1  # the cool-down spared the other calls a connection attempt
    warnings = [r.getMessage() for r in caplog.records if r.name == "relaygate.budgets"]
    assert len(warnings) == 1
    assert "unreachable" in warnings[0]
    assert "hunter2" not in caplog.text and "127.0.0.1" not in caplog.text


async def test_closed_mode_refuses_while_redis_is_unreachable(dead_redis: redis.Redis) -> None:
    clock = Clock()
    primary = RedisLedger(dead_redis, "x:", Seed())
    ledger = FallbackLedger(primary, MemoryLedger(Seed()), "closed", clock=clock)
    for _ in range(3):
        with pytest.raises(LedgerUnavailable):
            await ledger.reserve(CHARGES, 0.1)
    assert ledger.attempts == 1
    clock.now += 2.5  # after the cool-down, Redis is tried again
    with pytest.raises(LedgerUnavailable):
        await ledger.reserve(CHARGES, 0.1)
    assert ledger.attempts == 2


async def test_spend_is_shared_again_once_redis_is_back(
    redis_client: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="relaygate.budgets")
    clock = Clock()
    primary = Switchable(RedisLedger(redis_client, prefix, Seed()))
    ledger = FallbackLedger(primary, MemoryLedger(Seed()), "local", clock=clock)
    primary.down = True
    during = await ledger.reserve(CHARGES, 0.3)
    assert during.reservation is not None and during.reservation.backend == "memory"
    primary.down = False
    assert (await ledger.reserve(CHARGES, 0.3)).reservation.backend == "memory"  # type: ignore[union-attr]
    clock.now += 2.5
    after = await ledger.reserve(CHARGES, 0.3)
    assert after.reservation is not None and after.reservation.backend == "redis"
    assert ledger.healthy
    # The reservation made during the outage settles where it lives.
    await ledger.settle(during.reservation, 0.2)
    assert await primary.inner.status(CHARGES[0]) == pytest.approx((0.0, 0.3))
    messages = [r.getMessage() for r in caplog.records if r.name == "relaygate.budgets"]
    assert len(messages) == 2 and "reachable again" in messages[1]


async def test_a_settle_lost_to_an_outage_is_made_once_redis_is_back(
    redis_client: redis.Redis, prefix: str
) -> None:
    clock = Clock()
    primary = Switchable(RedisLedger(redis_client, prefix, Seed()))
    ledger = FallbackLedger(primary, MemoryLedger(Seed()), "local", clock=clock)
    decision = await ledger.reserve(CHARGES, 0.5)
    assert decision.reservation is not None and decision.reservation.backend == "redis"
    primary.down = True
    await ledger.settle(decision.reservation, 0.2)
    primary.down = False
    clock.now += 2.5
    await ledger.reserve(CHARGES, 0.1)
    await ledger.aclose()  # waits for the settles retried in the background
    assert await primary.inner.status(CHARGES[0]) == pytest.approx((0.2, 0.1))


@pytest.mark.parametrize(("mode", "extended"), [("local", True), ("closed", False)])
async def test_a_stream_outliving_redis_is_extended_only_in_local_mode(
    redis_client: redis.Redis, prefix: str, mode: str, extended: bool
) -> None:
    primary = Switchable(RedisLedger(redis_client, prefix, Seed()))
    ledger = FallbackLedger(primary, MemoryLedger(Seed()), mode)  # type: ignore[arg-type]
    decision = await ledger.reserve(CHARGES, 0.5)
    assert decision.reservation is not None
    primary.down = True
    grown = await ledger.extend(decision.reservation, 0.1)
    assert (grown is not None) is extended


async def test_the_gateway_ledger_is_shared_only_with_a_redis_client(
    redis_client: redis.Redis, prefix: str
) -> None:
    assert isinstance(build_ledger(None, prefix, Seed(), "local"), MemoryLedger)
    shared = build_ledger(redis_client, prefix, Seed(), "closed")
    decision = await shared.reserve(CHARGES, 0.1)
    assert decision.reservation is not None and decision.reservation.backend == "redis"
