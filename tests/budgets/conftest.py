"""Each ledger test runs on the in-process ledger and on the real Redis."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis.asyncio as redis

from relaygate.budgets import MemoryLedger, RedisLedger, SpendLedger
from tests.budgets.helpers import Seed

MakeLedger = Callable[[Seed], SpendLedger]


@pytest.fixture(params=["memory", "redis"])
def make_ledger(request: pytest.FixtureRequest) -> MakeLedger:
    """Builds the ledger under test from a seed source: in-process, or on the real Redis."""
    if request.param == "memory":
        return MemoryLedger
    client: redis.Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("prefix")
    return lambda seed: RedisLedger(client, prefix, seed)
