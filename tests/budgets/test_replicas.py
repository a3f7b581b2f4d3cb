"""The proof: many concurrent requests, on one process or three replicas, keep to the cap.

300 requests each reserve $0.05 (their most) and settle an actual cost of $0.01-0.05.
- Upper bound: a request is admitted only while spent + reserved + $0.05 <= $1.00, and its
  actual cost is at most what it reserved, so spend never passes $1.00 (the contract allows one
  reservation more, $1.05). A check-then-take that is not atomic overshoots by many.
- Lower bound: a refused request gives up only once the recorded spend is within one
  reservation of the cap (spend > $0.95); otherwise budget is merely held by requests in flight
  and it tries again. Spend never decreases, so the final spend is above $0.95: the cap is
  really used, no reservation leaks budget. Enough requests remain for this ($0.95 / $0.01 <
  300), and a ledger that leaked would leave them refused and the spend low.
"""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as redis

from relaygate.budgets import MemoryLedger, RedisLedger, SpendLedger, charges_for
from tests.budgets.helpers import IDS, T0, Seed, rule

LIMIT, HOLD, REQUESTS = 1.00, 0.05, 300
MAX_TRIES = 2_000


async def _run(replicas: list[SpendLedger]) -> tuple[float, float]:
    charges = charges_for([rule(LIMIT)], IDS, T0)
    rng = random.Random(20261122)

    async def request(index: int) -> float:
        ledger = replicas[index % len(replicas)]
        for _ in range(MAX_TRIES):
            decision = await ledger.reserve(charges, HOLD)
            if decision.reservation is not None:
                await asyncio.sleep(rng.random() / 100)  # the upstream call
                actual = round(rng.uniform(0.01, HOLD), 6)
                await ledger.settle(decision.reservation, actual)
                return actual
            spent, _reserved = await ledger.status(charges[0])
            if spent > LIMIT - HOLD:
                return 0.0
            await asyncio.sleep(0.01)  # wait for requests in flight to settle
        return 0.0

    settled = await asyncio.gather(*(request(i) for i in range(REQUESTS)))
    spent, reserved = await replicas[0].status(charges[0])
    assert reserved == pytest.approx(0.0)
    assert spent == pytest.approx(sum(settled))
    return spent, sum(settled)


async def test_one_process_keeps_to_the_cap() -> None:
    spent, _ = await _run([MemoryLedger(Seed())])
    assert LIMIT - HOLD < spent <= LIMIT + HOLD


async def test_three_replicas_sharing_redis_keep_to_the_cap(redis_url: str, prefix: str) -> None:
    # A generous read timeout: 300 tasks share one Redis on a busy 2-core CI machine, and this
    # test is about the cap, not about Redis latency.
    clients = [redis.Redis.from_url(redis_url, socket_timeout=60) for _ in range(3)]
    try:
        spent, _ = await _run([RedisLedger(c, prefix, Seed()) for c in clients])
    finally:
        for client in clients:
            await client.aclose()
    assert LIMIT - HOLD < spent <= LIMIT + HOLD
