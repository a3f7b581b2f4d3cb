"""Replay guards: a signed request's signature or a JWT's `jti` is accepted once per window."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as redis
from redis import exceptions as redis_errors

log = logging.getLogger("relaygate.auth")

UNREACHABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    TimeoutError,
    OSError,
)


class ReplayGuard(Protocol):
    """Remembers nonces for a time."""

    async def first_use(self, namespace: str, nonce: str, ttl_s: float) -> bool:
        """True the first time `nonce` is seen in `namespace` within `ttl_s`; False after."""
        ...


class MemoryReplayGuard:
    """Nonces in a dict with expiry times; pruned as it grows, never above `max_entries`."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_entries: int = 1_000_000
    ) -> None:
        self._clock = clock
        self._max = max_entries
        self._seen: dict[tuple[str, str], float] = {}
        self._next_prune = 0.0

    def _prune(self, now: float) -> None:
        self._seen = {k: v for k, v in self._seen.items() if v > now}
        self._next_prune = now + 1.0
        while len(self._seen) >= self._max:  # still full of live nonces: forget the oldest
            del self._seen[min(self._seen, key=self._seen.__getitem__)]

    async def first_use(self, namespace: str, nonce: str, ttl_s: float) -> bool:
        """True the first time within `ttl_s`."""
        now = self._clock()
        if now >= self._next_prune or len(self._seen) >= self._max:
            self._prune(now)
        key = (namespace, nonce)
        expires = self._seen.get(key)
        if expires is not None and expires > now:
            return False
        self._seen[key] = now + ttl_s
        return True


class RedisReplayGuard:
    """`SET NX PX` per nonce: one replica's acceptance is seen by all."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    async def first_use(self, namespace: str, nonce: str, ttl_s: float) -> bool:
        """True the first time within `ttl_s`, across every replica."""
        digest = hashlib.sha256(nonce.encode()).hexdigest()
        key = f"{self._prefix}replay:{namespace}:{digest}"
        return bool(await self._client.set(key, b"1", nx=True, px=max(1, int(ttl_s * 1000))))


class FallbackReplayGuard:
    """Redis, or each replica's memory while Redis is unreachable (one warning per outage)."""

    def __init__(
        self,
        primary: ReplayGuard,
        local: ReplayGuard,
        *,
        timeout_s: float = 0.5,
        cooldown_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self._local = local
        self._timeout_s = timeout_s
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._down_until = 0.0
        self._down = False
        self.attempts = 0

    @property
    def healthy(self) -> bool:
        """False from a failure of the primary until its next success."""
        return not self._down

    async def first_use(self, namespace: str, nonce: str, ttl_s: float) -> bool:
        """From Redis when reachable, else from this replica's memory."""
        if not (self._down and self._clock() < self._down_until):
            self.attempts += 1
            try:
                async with asyncio.timeout(self._timeout_s):
                    fresh = await self._primary.first_use(namespace, nonce, ttl_s)
            except UNREACHABLE as exc:
                if not self._down:
                    log.warning(
                        "replay guard: Redis unreachable (%s); each replica remembers nonces"
                        " on its own",
                        type(exc).__name__,
                    )
                self._down = True
                self._down_until = self._clock() + self._cooldown_s
            else:
                if self._down:
                    log.warning("replay guard: Redis is reachable again")
                    self._down = False
                # Remember it locally too, so an outage right after does not forget it.
                await self._local.first_use(namespace, nonce, ttl_s)
                return fresh
        return await self._local.first_use(namespace, nonce, ttl_s)
