"""The ledger a gateway uses: in-process alone, or Redis with an in-process fallback."""

from __future__ import annotations

import redis.asyncio as redis

from relaygate.budgets.base import SeedSource, SpendLedger
from relaygate.budgets.fallback import FallbackLedger, LedgerMode
from relaygate.budgets.memory import MemoryLedger
from relaygate.budgets.redis_backend import RedisLedger

# A Redis round trip slower than this counts as an outage (the fallback takes over).
REDIS_TIMEOUT_S = 0.5


def build_ledger(
    redis_client: redis.Redis | None, prefix: str, seed: SeedSource, mode: LedgerMode
) -> SpendLedger:
    """`MemoryLedger` without a Redis client, else Redis falling back as `mode` says."""
    if redis_client is None:
        return MemoryLedger(seed)
    shared = RedisLedger(redis_client, prefix, seed, timeout_s=REDIS_TIMEOUT_S)
    return FallbackLedger(shared, MemoryLedger(seed), mode)
