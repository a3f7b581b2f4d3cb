"""Replay guards: a signed request's signature or a JWT's `jti` is accepted once per window."""

from __future__ import annotations

import hashlib
import heapq
import logging
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as redis

from relaygate.server.outage import SharedBackend

log = logging.getLogger("relaygate.auth")


class ReplayGuard(Protocol):
    """Remembers nonces for a time."""

    async def first_use(self, namespace: str, nonce: str, ttl_s: float) -> bool:
        """True the first time `nonce` is seen in `namespace` within `ttl_s`; False after."""
        ...


class MemoryReplayGuard:
    """Nonces with expiry times in this process, never more than `max_entries`.

    A heap ordered by expiry drops expired nonces as time passes (O(log n) each). When the guard
    is full of live nonces, the one closest to expiry is forgotten to make room.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_entries: int = 1_000_000
    ) -> None:
        self._clock = clock
        self._max = max(1, max_entries)
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, str, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def _pop_soonest(self) -> None:
        expires, namespace, nonce = heapq.heappop(self._heap)
        if self._expiry.get((namespace, nonce)) == expires:
            del self._expiry[(namespace, nonce)]

    async def first_use(self, namespace: str, nonce: str, ttl_s: float) -> bool:
        """True the first time within `ttl_s`."""
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            self._pop_soonest()
        key = (namespace, nonce)
        if key in self._expiry:
            return False
        while len(self._expiry) >= self._max:
            self._pop_soonest()
        expires = now + ttl_s
        self._expiry[key] = expires
        heapq.heappush(self._heap, (expires, namespace, nonce))
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
    """Redis, or each replica's memory while Redis is unreachable (one warning per outage).

    After a failure the primary is skipped for `cooldown_s` (see `SharedBackend`). Every nonce is
    also remembered locally, so a nonce this replica accepted during an outage stays refused
    after it.
    """

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
        self._shared = SharedBackend(
            "replay guard: Redis",
            "each replica remembers nonces on its own",
            log,
            timeout_s=timeout_s,
            cooldown_s=cooldown_s,
            clock=clock,
        )

    @property
    def healthy(self) -> bool:
        """False from a failure of the primary until its next success."""
        return self._shared.healthy

    @property
    def attempts(self) -> int:
        """Calls made to the primary (for tests and diagnostics)."""
        return self._shared.attempts

    async def first_use(self, namespace: str, nonce: str, ttl_s: float) -> bool:
        """From Redis when reachable, else from this replica's memory."""
        ok, fresh = await self._shared.call(
            lambda: self._primary.first_use(namespace, nonce, ttl_s)
        )
        fresh_here = await self._local.first_use(namespace, nonce, ttl_s)
        return bool(fresh) and fresh_here if ok else fresh_here
