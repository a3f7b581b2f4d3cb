"""Calls to a shared backend (Redis) that may be unreachable: cool-down, one probe, one warning.

Limits, budgets and replay guards each fall back to in-process state while Redis is away. They
share this tracker: after a failure the backend is left alone for `cooldown_s`; then exactly one
call probes it while the others keep using the fallback, so an outage costs at most one timeout
per cool-down. One warning is logged when an outage starts and one when it ends, naming only the
exception type (a Redis URL or its error text may carry a password). Work that must reach the
backend eventually (settling a lease or a reservation) is queued and retried on recovery.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis import exceptions as redis_errors

T = TypeVar("T")

# What "unreachable" means (a read-only replica is a failover under way); anything else (a script
# error, a bug) is raised, not hidden.
UNREACHABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    TimeoutError,
    OSError,
)
MAX_QUEUED_RETRIES = 10_000

_SKIP, _CALL, _PROBE = 0, 1, 2


class SharedBackend:
    """The health of one shared backend, and calls to it that never wait out an outage."""

    def __init__(
        self,
        what: str,
        consequence: str,
        log: logging.Logger,
        *,
        timeout_s: float | None = 0.5,
        cooldown_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._what = what
        self._consequence = consequence
        self._log = log
        self._timeout_s = timeout_s
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._healthy = True
        self._probing = False
        self._retry_at = 0.0
        self._retries: collections.deque[Callable[[], Awaitable[object]]] = collections.deque(
            maxlen=MAX_QUEUED_RETRIES
        )
        self._drain: asyncio.Task[None] | None = None
        self.attempts = 0
        """Calls made to the backend (for tests and diagnostics)."""

    @property
    def healthy(self) -> bool:
        """False from a failed call until a call succeeds again (for /readyz)."""
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
            self._log.warning("%s is reachable again", self._what)
            if self._retries and self._drain is None:
                self._drain = asyncio.ensure_future(self._retry_queued())

    def _failed(self, attempt: int, exc: BaseException) -> None:
        if attempt == _PROBE:
            self._probing = False
        self._retry_at = self._clock() + self._cooldown_s
        if self._healthy:
            self._healthy = False
            self._log.warning(
                "%s unreachable (%s): %s until it is back (retried every %g s)",
                self._what,
                type(exc).__name__,
                self._consequence,
                self._cooldown_s,
            )

    async def call(self, operation: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """(True, result), or (False, None) if the backend is (or is being left) unreachable."""
        attempt = self._begin()
        if attempt == _SKIP:
            return False, None
        self.attempts += 1
        try:
            if self._timeout_s is None:
                result = await operation()
            else:
                async with asyncio.timeout(self._timeout_s):
                    result = await operation()
        except UNREACHABLE as exc:
            self._failed(attempt, exc)
            return False, None
        except BaseException:
            if attempt == _PROBE:
                self._probing = False
            raise
        self._succeeded(attempt)
        return True, result

    async def call_or_retry_later(self, operation: Callable[[], Awaitable[object]]) -> None:
        """Run `operation` now, or queue it for when the backend is back (oldest dropped first)."""
        ok, _ = await self.call(operation)
        if not ok:
            self._retries.append(operation)

    async def _retry_queued(self) -> None:
        try:
            while self._retries and self._healthy:
                operation = self._retries.popleft()
                try:
                    ok, _ = await self.call(operation)
                except Exception as exc:  # one bad item must not stop the others
                    self._log.warning(
                        "%s: a queued retry failed: %s", self._what, type(exc).__name__
                    )
                    continue
                if not ok:
                    self._retries.appendleft(operation)
        finally:
            self._drain = None

    async def aclose(self) -> None:
        """Wait for queued retries that are under way."""
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)
