"""Shared limits with a fallback for when Redis is unreachable: per replica, admit, or refuse."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Literal

from relaygate.limits.base import Decision, Lease, Limiter, LimiterUnavailable, Subject
from relaygate.server.outage import SharedBackend

log = logging.getLogger("relaygate.limits")

FallbackMode = Literal["local", "open", "closed"]

_CONSEQUENCE: dict[str, str] = {
    "local": "each replica enforces the limits on its own",
    "open": "requests are admitted without rate limits",
    "closed": "requests are refused (503)",
}


class FallbackLimiter:
    """The primary (shared) limiter, with `mode` deciding what happens while it is unreachable.

    A call to the primary that takes longer than `timeout_s` counts as a failure (whatever the
    client's own timeouts and retries); the cool-down, probing and warnings are those of
    `SharedBackend`. Settles go to the backend that holds the lease; those for Redis that fail
    are retried once it is back.
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
        self._shared = SharedBackend(
            "rate-limit backend",
            _CONSEQUENCE[mode],
            log,
            timeout_s=timeout_s,
            cooldown_s=cooldown_s,
            clock=clock,
        )

    @property
    def healthy(self) -> bool:
        """False from a failed call to the primary until a call succeeds again (for /readyz)."""
        return self._shared.healthy

    async def acquire(self, subjects: Sequence[Subject], tokens: int) -> Decision:
        """Decide with the primary, or as `mode` says while it is unreachable."""
        ok, decision = await self._shared.call(lambda: self._primary.acquire(subjects, tokens))
        if ok and decision is not None:
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
        elif lease.backend == "redis":
            await self._shared.call_or_retry_later(
                lambda: self._primary.settle(lease, actual_tokens)
            )

    async def aclose(self) -> None:
        """Finish retrying settles, then close both limiters."""
        await self._shared.aclose()
        await self._primary.aclose()
        await self._local.aclose()
