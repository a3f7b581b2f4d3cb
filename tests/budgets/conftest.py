"""Each ledger test runs on the in-process ledger and on the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as redis

from relaygate.budgets import MemoryLedger, RedisLedger, SpendLedger
from tests.budgets.helpers import Seed
from tests.support.services import unique_prefix

MakeLedger = Callable[[Seed], SpendLedger]


async def delete_prefix(client: redis.Redis, prefix: str) -> None:
    """Remove every key a test wrote (tests never flush a shared server)."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.Redis]:
    """A client for the test Redis."""
    client = redis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis_client: redis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test alone; its keys are removed afterwards."""
    value = unique_prefix()
    yield value
    await delete_prefix(redis_client, value)


@pytest.fixture(params=["memory", "redis"])
def make_ledger(request: pytest.FixtureRequest) -> MakeLedger:
    """Builds the ledger under test from a seed source: in-process, or on the real Redis."""
    if request.param == "memory":
        return MemoryLedger
    client: redis.Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("prefix")
    return lambda seed: RedisLedger(client, prefix, seed)
