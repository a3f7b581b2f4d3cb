"""The limiter a gateway uses: in-process alone, or Redis with an in-process fallback."""

from __future__ import annotations

import redis.asyncio as redis

from relaygate.limits.base import Limiter
from relaygate.limits.fallback import FallbackLimiter, FallbackMode
from relaygate.limits.memory import MemoryLimiter
from relaygate.limits.redis_backend import RedisLimiter


def build_limiter(redis_client: redis.Redis | None, prefix: str, mode: FallbackMode) -> Limiter:
    """`MemoryLimiter` without a Redis client, else Redis falling back as `mode` says."""
    if redis_client is None:
        return MemoryLimiter()
    return FallbackLimiter(RedisLimiter(redis_client, prefix), MemoryLimiter(), mode)
