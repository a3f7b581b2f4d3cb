"""The shared ledger with a fallback for when Redis is unreachable: per replica, or refuse."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Literal, TypeVar

import redis.exceptions

from relaygate.budgets.base import (
    BudgetDecision,
    Charge,
    LedgerUnavailable,
    Reservation,
    SpendLedger,
)
from relaygate.budgets.memory import MemoryLedger
from relaygate.budgets.money import reserve_micros

log = logging.getLogger("relaygate.budgets")

LedgerMode = Literal["local", "closed"]
T = TypeVar("T")

# What "unreachable" means (a read-only replica is a failover under way). Anything else (a script
# error, a seed that could not be read) is raised, not hidden behind the fallback.
UNREACHABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    TimeoutError,
    OSError,
)
# Settles of shared reservations that failed during an outage, retried once Redis is back.
MAX_PENDING_SETTLES = 10_000

_CONSEQUENCE: dict[str, str] = {
    "local": "each replica tracks spend on its own",
    "closed": "requests with budgets are refused (503)",
}

_SKIP, _CALL, _PROBE = 0, 1, 2


class FallbackLedger:
    """The primary (shared) ledger, with `mode` deciding what happens while it is unreachable.

    "local": reserve on the in-process ledger (each replica alone enforces the caps); "closed":
    `reserve` raises `LedgerUnavailable`. After a failure the primary is left alone for
    `cooldown_s`; then one request probes it while the others keep using the fallback. One warning
    per outage, naming only the exception type (a Redis URL may carry a password).

    Extends and settles go to the backend named in the reservation. While Redis is unreachable,
    a Redis reservation's extension is granted unchecked in "local" mode (an outage does not cut
    every stream) and refused in "closed" mode; its settle is kept and retried once Redis is back
    (a settle is idempotent, and a reservation never settled expires with its TTL).
    """

    def __init__(
        self,
        primary: SpendLedger,
        local: SpendLedger,
        mode: LedgerMode,
        *,
        cooldown_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in _CONSEQUENCE:
            raise ValueError(f"unknown fallback mode {mode!r}")
        self._primary = primary
        self._local = local
        self._mode = mode
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._healthy = True
        self._probing = False
        self._retry_at = 0.0
        self._pending: collections.deque[tuple[Reservation, float]] = collections.deque(
            maxlen=MAX_PENDING_SETTLES
        )
        self._drain: asyncio.Task[None] | None = None
        self.attempts = 0
        """Calls made to the primary (for tests and diagnostics)."""

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
            log.warning("budget ledger: Redis reachable again; spend is shared across replicas")
            if self._pending and self._drain is None:
                self._drain = asyncio.ensure_future(self._settle_pending())

    def _failed(self, attempt: int, exc: BaseException) -> None:
        if attempt == _PROBE:
            self._probing = False
        self._retry_at = self._clock() + self._cooldown_s
        if self._healthy:
            self._healthy = False
            log.warning(
                "budget ledger: Redis unreachable (%s): %s until it is back (retried every %g s)",
                type(exc).__name__,
                _CONSEQUENCE[self._mode],
                self._cooldown_s,
            )

    async def _call(self, call: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """(True, result) from the primary, or (False, None) if it is (or is left) unreachable."""
        attempt = self._begin()
        if attempt == _SKIP:
            return False, None
        self.attempts += 1
        try:
            result = await call()
        except UNREACHABLE as exc:
            self._failed(attempt, exc)
            return False, None
        except BaseException:
            if attempt == _PROBE:
                self._probing = False
            raise
        self._succeeded(attempt)
        return True, result

    async def reserve(self, charges: Sequence[Charge], amount_usd: float) -> BudgetDecision:
        """Reserve on the primary, or as `mode` says while it is unreachable."""
        ok, decision = await self._call(lambda: self._primary.reserve(charges, amount_usd))
        if ok and decision is not None:
            return decision
        if self._mode == "closed":
            raise LedgerUnavailable("the shared budget ledger is unreachable")
        return await self._local.reserve(charges, amount_usd)

    async def extend(self, reservation: Reservation, extra_usd: float) -> Reservation | None:
        """Extend where the reservation lives (see the class docstring for an outage)."""
        if reservation.backend == MemoryLedger.backend:
            return await self._local.extend(reservation, extra_usd)
        ok, grown = await self._call(lambda: self._primary.extend(reservation, extra_usd))
        if ok:
            return grown
        if self._mode == "closed":
            return None
        extra = reserve_micros(extra_usd)
        return replace(reservation, amount_micros=reservation.amount_micros + extra)

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Settle where the reservation lives; a shared one is retried after an outage."""
        if reservation.backend == MemoryLedger.backend:
            await self._local.settle(reservation, actual_usd)
            return
        ok, _ = await self._call(lambda: self._primary.settle(reservation, actual_usd))
        if not ok:
            self._pending.append((reservation, actual_usd))

    async def status(self, charge: Charge) -> tuple[float, float]:
        """From the primary, else from the in-process ledger."""
        ok, found = await self._call(lambda: self._primary.status(charge))
        if ok and found is not None:
            return found
        return await self._local.status(charge)

    async def _settle_pending(self) -> None:
        try:
            while self._pending and self._healthy:
                reservation, actual_usd = self._pending.popleft()
                try:
                    await self._primary.settle(reservation, actual_usd)
                except UNREACHABLE as exc:
                    self._pending.appendleft((reservation, actual_usd))
                    self._failed(_CALL, exc)
                except Exception as exc:  # one bad settle must not stop the others
                    log.warning("budget ledger: a late settle failed: %s", type(exc).__name__)
        finally:
            self._drain = None

    async def aclose(self) -> None:
        """Finish retrying settles, then close both ledgers."""
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)
        await self._primary.aclose()
        await self._local.aclose()
