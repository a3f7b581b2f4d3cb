"""The shared ledger with a fallback for when Redis is unreachable: per replica, or refuse."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar

import redis.exceptions

from relaygate.budgets.base import (
    BudgetDecision,
    Charge,
    LedgerUnavailable,
    Reservation,
    SpendLedger,
)

log = logging.getLogger("relaygate.budgets")

LedgerMode = Literal["local", "closed"]
T = TypeVar("T")

UNREACHABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    TimeoutError,
    OSError,
)


class FallbackLedger:
    """The primary (shared) ledger; while it is unreachable `mode` decides.

    A primary call slower than `timeout_s` counts as a failure; after one, the primary is left
    alone for `cooldown_s`. One warning per outage, naming only the exception type (a Redis URL
    may carry a password). Extends and settles go to the backend that holds the reservation.
    """

    def __init__(
        self,
        primary: SpendLedger,
        local: SpendLedger,
        mode: LedgerMode,
        *,
        timeout_s: float = 0.5,
        cooldown_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self._local = local
        self._mode = mode
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

    async def _try(self, call: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        if self._down and self._clock() < self._down_until:
            return False, None
        self.attempts += 1
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await call()
        except UNREACHABLE as exc:
            if not self._down:
                log.warning(
                    "budget ledger: Redis unreachable (%s); %s",
                    type(exc).__name__,
                    "each replica tracks spend on its own"
                    if self._mode == "local"
                    else "requests with budgets are refused (503)",
                )
            self._down = True
            self._down_until = self._clock() + self._cooldown_s
            return False, None
        if self._down:
            log.warning("budget ledger: Redis is reachable again")
            self._down = False
        return True, result

    def _fallback(self) -> SpendLedger:
        if self._mode == "closed":
            raise LedgerUnavailable("the shared budget ledger is unreachable")
        return self._local

    async def reserve(self, charges: Sequence[Charge], amount_usd: float) -> BudgetDecision:
        """Reserve on the primary, else as `mode` says."""
        ok, decision = await self._try(lambda: self._primary.reserve(charges, amount_usd))
        if ok and decision is not None:
            return decision
        return await self._fallback().reserve(charges, amount_usd)

    def _holder(self, reservation: Reservation) -> SpendLedger:
        return self._local if reservation.backend == "memory" else self._primary

    async def extend(self, reservation: Reservation, extra_usd: float) -> Reservation | None:
        """Extend where the reservation lives; an unreachable primary refuses the extension."""
        holder = self._holder(reservation)
        if holder is self._local:
            return await holder.extend(reservation, extra_usd)
        ok, grown = await self._try(lambda: holder.extend(reservation, extra_usd))
        return grown if ok else None

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Settle where the reservation lives (a lost Redis settle expires with its TTL)."""
        holder = self._holder(reservation)
        if holder is self._local:
            await holder.settle(reservation, actual_usd)
            return
        await self._try(lambda: holder.settle(reservation, actual_usd))

    async def status(self, charge: Charge) -> tuple[float, float]:
        """From the primary, else the local ledger."""
        ok, found = await self._try(lambda: self._primary.status(charge))
        if ok and found is not None:
            return found
        return await self._local.status(charge)

    async def aclose(self) -> None:
        """Close both ledgers."""
        await self._primary.aclose()
        await self._local.aclose()
