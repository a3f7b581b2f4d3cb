"""A replica that dies between reserve and settle does not hold budget forever."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from relaygate.budgets import RedisLedger, charges_for
from tests.budgets.helpers import IDS, T0, Seed, rule

TTL_S = 1.0


async def _until_allowed(ledger: RedisLedger, amount: float, deadline_s: float = 15.0) -> bool:
    charges = charges_for([rule(1.0)], IDS, T0)
    for _ in range(int(deadline_s / 0.1)):
        if (await ledger.reserve(charges, amount)).allowed:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_an_unsettled_reservation_stops_counting_after_its_ttl(
    redis_client: redis.Redis, prefix: str
) -> None:
    crashed = RedisLedger(redis_client, prefix, Seed(), reservation_ttl_s=TTL_S)
    survivor = RedisLedger(redis_client, prefix, Seed(), reservation_ttl_s=600)
    charges = charges_for([rule(1.0)], IDS, T0)
    assert (await crashed.reserve(charges, 0.9)).allowed  # never settled
    assert not (await survivor.reserve(charges, 0.9)).allowed
    assert await _until_allowed(survivor, 0.9)
    assert await survivor.status(charges[0]) == pytest.approx((0.0, 0.9))


async def test_a_late_settle_of_an_expired_reservation_still_counts_its_cost_once(
    redis_client: redis.Redis, prefix: str
) -> None:
    ledger = RedisLedger(redis_client, prefix, Seed(), reservation_ttl_s=TTL_S)
    charges = charges_for([rule(1.0)], IDS, T0)
    slow = await ledger.reserve(charges, 0.5)
    assert slow.reservation is not None
    other = RedisLedger(redis_client, prefix, Seed(), reservation_ttl_s=600)
    assert await _until_allowed(other, 0.6)  # the slow one's hold has expired
    await ledger.settle(slow.reservation, 0.3)
    await ledger.settle(slow.reservation, 0.3)
    assert await ledger.status(charges[0]) == pytest.approx((0.3, 0.6))
