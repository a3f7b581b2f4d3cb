"""Counters start from the spend already recorded in the database, read once."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from relaygate.budgets import (
    FallbackLedger,
    LedgerUnavailable,
    MemoryLedger,
    RedisLedger,
    charges_for,
)
from tests.budgets.conftest import MakeLedger
from tests.budgets.helpers import IDS, T0, Seed, rule


async def test_a_counter_starts_from_the_recorded_spend(make_ledger: MakeLedger) -> None:
    budget = rule(1.0)
    ledger = make_ledger(Seed({budget.id: 0.95}))
    charges = charges_for([budget], IDS, T0)
    refused = await ledger.reserve(charges, 0.10)
    assert refused.refused_by == charges[0]
    allowed = await ledger.reserve(charges, 0.05)
    assert allowed.allowed and allowed.remaining_usd == pytest.approx(0.0)
    assert await ledger.status(charges[0]) == pytest.approx((0.95, 0.05))


async def test_concurrent_requests_on_a_new_counter_read_the_spend_once(
    make_ledger: MakeLedger,
) -> None:
    budget = rule(1.0)
    seed = Seed({budget.id: 0.5}, gated=True)
    ledger = make_ledger(seed)
    charges = charges_for([budget], IDS, T0)
    requests = [asyncio.ensure_future(ledger.reserve(charges, 0.1)) for _ in range(20)]
    await seed.called(1)
    await asyncio.sleep(0.05)  # let the other requests reach the seed too
    seed.release()
    decisions = await asyncio.gather(*requests)
    assert [d.allowed for d in decisions].count(True) == 5
    assert len(seed.calls) == 1
    assert await ledger.status(charges[0]) == pytest.approx((0.5, 0.5))


async def test_two_replicas_seeding_at_once_count_the_seed_once(
    redis_url: str, prefix: str
) -> None:
    budget = rule(1.0)
    seed = Seed({budget.id: 0.4}, gated=True)
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    try:
        replicas = [RedisLedger(client, prefix, seed) for client in clients]
        charges = charges_for([budget], IDS, T0)
        requests = [asyncio.ensure_future(r.reserve(charges, 0.1)) for r in replicas]
        await seed.called(2)  # both found the counter missing and read the database
        seed.release()
        assert all(d.allowed for d in await asyncio.gather(*requests))
        assert await replicas[1].status(charges[0]) == pytest.approx((0.4, 0.2))
    finally:
        for client in clients:
            await client.aclose()


async def test_a_lost_redis_counter_is_seeded_again_and_keeps_live_reservations(
    redis_client: redis.Redis, prefix: str
) -> None:
    budget = rule(1.0)
    seed = Seed({budget.id: 0.2})
    ledger = RedisLedger(redis_client, prefix, seed)
    charges = charges_for([budget], IDS, T0)
    live = await ledger.reserve(charges, 0.3)
    assert live.reservation is not None
    settled = await ledger.reserve(charges, 0.1)
    assert settled.reservation is not None
    await ledger.settle(settled.reservation, 0.1)

    # Redis loses the counter (eviction, a restart without persistence); meanwhile the database
    # has recorded the settled request.
    seed.spent[budget.id] = 0.3
    async for key in redis_client.scan_iter(match=f"{prefix}bg:*"):
        if await redis_client.type(key) == b"hash" and not key.endswith(b":amt"):
            await redis_client.delete(key)

    assert await ledger.status(charges[0]) == pytest.approx((0.3, 0.3))
    assert len(seed.calls) == 2
    assert not (await ledger.reserve(charges, 0.41)).allowed
    await ledger.settle(live.reservation, 0.25)
    assert await ledger.status(charges[0]) == pytest.approx((0.55, 0.0))


async def test_a_settle_on_a_lost_counter_leaves_the_database_to_count_it(
    redis_client: redis.Redis, prefix: str
) -> None:
    budget = rule(1.0)
    seed = Seed({budget.id: 0.0})
    ledger = RedisLedger(redis_client, prefix, seed)
    charges = charges_for([budget], IDS, T0)
    decision = await ledger.reserve(charges, 0.5)
    assert decision.reservation is not None
    await redis_client.delete(*[key async for key in redis_client.scan_iter(match=f"{prefix}*")])
    await ledger.settle(decision.reservation, 0.4)
    seed.spent[budget.id] = 0.4  # the usage ledger recorded the request
    # Counted once: from the database, not also from the settle.
    assert await ledger.status(charges[0]) == pytest.approx((0.4, 0.0))
    assert (await ledger.reserve(charges, 0.6)).allowed


async def test_unreadable_recorded_spend_makes_the_ledger_unavailable(
    make_ledger: MakeLedger,
) -> None:
    seed = Seed()
    seed.failing = True
    ledger = make_ledger(seed)
    charges = charges_for([rule(1.0)], IDS, T0)
    with pytest.raises(LedgerUnavailable):
        await ledger.reserve(charges, 0.1)
    seed.failing = False
    assert (await ledger.reserve(charges, 0.1)).allowed


async def test_a_database_outage_is_not_mistaken_for_a_redis_outage(
    redis_client: redis.Redis, prefix: str
) -> None:
    seed = Seed()
    seed.failing = True  # ConnectionRefusedError, an OSError like a Redis connection failure
    ledger = FallbackLedger(RedisLedger(redis_client, prefix, seed), MemoryLedger(seed), "local")
    with pytest.raises(LedgerUnavailable):
        await ledger.reserve(charges_for([rule(1.0)], IDS, T0), 0.1)
    assert ledger.healthy
