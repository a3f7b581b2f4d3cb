"""Who takes jobs: processes that run jobs from the shared queue announce themselves.

With `jobs.queue: redis`, every process that consumes the queue (a `relaygate worker`, or a
gateway with `jobs.run_in_gateway`) writes a heartbeat every `jobs.worker_heartbeat_s` into a
sorted set (member: the process's owner id, score: Unix time), and a gateway reads how many were
heard from within `jobs.worker_timeout_s` (decision 0030). With the embedded queue the gateway
itself runs every job, so there is nothing to announce.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

# Heartbeats older than this are dropped from the set (they only served "last seen").
FORGET_AFTER_S = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class Sighting:
    """What the heartbeats say: live workers now, and when any worker was last heard from."""

    live: int
    last_seen: float | None  # Unix time; None: no worker ever announced itself


class WorkerRegistry(Protocol):
    """Where processes that run jobs announce themselves."""

    async def beat(self, owner: str) -> None:
        """`owner` is alive and taking jobs."""

    async def leave(self, owner: str) -> None:
        """`owner` stops taking jobs (a graceful stop)."""

    async def sighting(self, timeout_s: float) -> Sighting:
        """The workers heard from within `timeout_s`."""

    async def aclose(self) -> None:
        """Release connections."""


class NoRegistry:
    """The embedded queue: the gateway runs its jobs itself; nobody else could take them."""

    async def beat(self, owner: str) -> None:
        return None

    async def leave(self, owner: str) -> None:
        return None

    async def sighting(self, timeout_s: float) -> Sighting:
        return Sighting(0, None)

    async def aclose(self) -> None:
        return None


class RedisWorkers:
    """Heartbeats in the queue's Redis: `<prefix>jobs:workers` (sorted set) and
    `<prefix>jobs:worker-seen` (the last heartbeat of any worker, kept after a graceful stop)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.members = f"{prefix}jobs:workers"
        self.seen = f"{prefix}jobs:worker-seen"

    @classmethod
    def connect(cls, url: str, prefix: str) -> RedisWorkers:
        """A registry on its own client with short timeouts (a health check must not hang)."""
        client = redis.Redis.from_url(
            url, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        return cls(client, prefix)

    async def beat(self, owner: str) -> None:
        now = time.time()
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(self.members, {owner: now})
            pipe.zremrangebyscore(self.members, "-inf", now - FORGET_AFTER_S)
            pipe.set(self.seen, repr(now))
            await pipe.execute()

    async def leave(self, owner: str) -> None:
        await self.client.zrem(self.members, owner)

    async def sighting(self, timeout_s: float) -> Sighting:
        now = time.time()
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zcount(self.members, now - timeout_s, "+inf")
            pipe.get(self.seen)
            live, seen = await pipe.execute()
        return Sighting(int(live), float(seen) if seen is not None else None)

    async def aclose(self) -> None:
        await self.client.aclose()
