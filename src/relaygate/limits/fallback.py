"""Shared limits with a fallback for when Redis is unreachable: per replica, admit, or refuse."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Literal

import redis.exceptions

from relaygate.limits.base import Decision, Lease, Limiter, LimiterUnavailable, Subject

log = logging.getLogger("relaygate.limits")

FallbackMode = Literal["local", "open", "closed"]

# What "unreachable" means (a read-only replica is a failover under way); anything else (a script
# error, a bug) is raised, not hidden.
UNREACHABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    TimeoutError,
    OSError,
)
# Settles of shared leases that failed during an outage, retried on recovery (older ones expire).
MAX_PENDING_SETTLES = 10_000

_CONSEQUENCE: dict[str, str] = {
    "local": "each replica enforces the limits on its own",
    "open": "requests are admitted without rate limits",
    "closed": "requests are refused (503)",
}

_SKIP, _CALL, _PROBE = 0, 1, 2


class FallbackLimiter:
    """The primary (shared) limiter, with `mode` deciding what happens while it is unreachable.

    A call to the primary that takes longer than `timeout_s` counts as a failure (whatever the
    client's own timeouts and retries). After a failure the primary is not called for
    `cooldown_s`; then one request probes it while the others keep using the fallback, so an
    outage costs at most one timeout per cool-down. One warning is logged per outage (the
    exception's type only: a Redis URL or its error text may carry a password). Settles go to the
    backend that holds the lease; those for Redis that fail are retried once it is back.
    """

    def __init__(
        self,
        primary: Limiter,
        local: Limiter,
        mode: FallbackMode,
        *,
        timeout_s: float = 0.5,
        cooldown_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in _CONSEQUENCE:
            raise ValueError(f"unknown fallback mode {mode!r}")
        self._primary = primary
        self._local = local
        self._mode = mode
        self._timeout_s = timeout_s
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._healthy = True
        self._probing = False
        self._retry_at = 0.0
        self._pending: collections.deque[tuple[Lease, int]] = collections.deque(
            maxlen=MAX_PENDING_SETTLES
        )
        self._drain: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        """False from a failed call to the primary until a call succeeds again (for /readyz)."""
        return self._healthy

    def _begin(self) -> int:
        if self._healthy:
            return _CALL
        if self._probing or self._clock() < self._retry_at:
            return _SKIP
        self._probing = True
        return _PROBE

    def _succeeded(self, attempt: int) -> None:
        if attempt == _PROBE:
            self._probing = False
        if not self._healthy:
            self._healthy = True
            log.warning("rate-limit backend reachable again: limits are shared across replicas")
            if self._pending and self._drain is None:
                self._drain = asyncio.ensure_future(self._settle_pending())

    def _failed(self, attempt: int, exc: BaseException) -> None:
        if attempt == _PROBE:
            self._probing = False
        self._retry_at = self._clock() + self._cooldown_s
        if self._healthy:
            self._healthy = False
            log.warning(
                "rate-limit backend unreachable (%s): %s until it is back (retried every %g s)",
                type(exc).__name__,
                _CONSEQUENCE[self._mode],
                self._cooldown_s,
            )

    async def acquire(self, subjects: Sequence[Subject], tokens: int) -> Decision:
        """Decide with the primary, or as `mode` says while it is unreachable."""
        attempt = self._begin()
        if attempt != _SKIP:
            try:
                async with asyncio.timeout(self._timeout_s):
                    decision = await self._primary.acquire(subjects, tokens)
            except UNREACHABLE as exc:
                self._failed(attempt, exc)
            except BaseException:
                if attempt == _PROBE:
                    self._probing = False
                raise
            else:
                self._succeeded(attempt)
                return decision
        if self._mode == "local":
            return await self._local.acquire(subjects, tokens)
        if self._mode == "open":
            lease = Lease(uuid.uuid4().hex, tuple(subjects), tokens, "none")
            return Decision(True, lease, 0.0, None, False, {})
        raise LimiterUnavailable("the rate-limit backend is unreachable")

    async def settle(self, lease: Lease, actual_tokens: int) -> None:
        """Settle with the backend named in the lease; a shared one is retried after an outage."""
        if lease.backend == "memory":
            await self._local.settle(lease, actual_tokens)
            return
        if lease.backend != "redis":
            return
        attempt = self._begin()
        if attempt == _SKIP:
            self._pending.append((lease, actual_tokens))
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._primary.settle(lease, actual_tokens)
        except UNREACHABLE as exc:
            self._failed(attempt, exc)
            self._pending.append((lease, actual_tokens))
        except BaseException:
            if attempt == _PROBE:
                self._probing = False
            raise
        else:
            self._succeeded(attempt)

    async def _settle_pending(self) -> None:
        try:
            while self._pending and self._healthy:
                lease, actual_tokens = self._pending.popleft()
                try:
                    async with asyncio.timeout(self._timeout_s):
                        await self._primary.settle(lease, actual_tokens)
                except UNREACHABLE as exc:
                    self._pending.appendleft((lease, actual_tokens))
                    self._failed(_CALL, exc)
                except Exception as exc:  # one bad lease must not stop the others
                    log.warning("settling a lease after an outage failed: %s", type(exc).__name__)
        finally:
            self._drain = None

    async def aclose(self) -> None:
        """Finish retrying settles, then close both limiters."""
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)
        await self._primary.aclose()
        await self._local.aclose()
