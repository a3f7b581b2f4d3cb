"""The shared ledger with a fallback for when Redis is unreachable: per replica, or refuse."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal

from relaygate.budgets.base import (
    BudgetDecision,
    Charge,
    LedgerUnavailable,
    Reservation,
    SpendLedger,
)
from relaygate.budgets.memory import MemoryLedger
from relaygate.budgets.money import reserve_micros
from relaygate.server.outage import SharedBackend

log = logging.getLogger("relaygate.budgets")

LedgerMode = Literal["local", "closed"]

_CONSEQUENCE: dict[str, str] = {
    "local": "each replica tracks spend on its own",
    "closed": "requests with budgets are refused (503)",
}


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
        # No timeout here: the Redis ledger bounds each round trip itself, and a slow database
        # read while seeding a counter is not a Redis outage.
        self._shared = SharedBackend(
            "budget ledger: Redis",
            _CONSEQUENCE[mode],
            log,
            timeout_s=None,
            cooldown_s=cooldown_s,
            clock=clock,
        )

    @property
    def healthy(self) -> bool:
        """False from a failed call to the primary until a call succeeds again (for /readyz)."""
        return self._shared.healthy

    @property
    def attempts(self) -> int:
        """Calls made to the primary (for tests and diagnostics)."""
        return self._shared.attempts

    async def reserve(self, charges: Sequence[Charge], amount_usd: float) -> BudgetDecision:
        """Reserve on the primary, or as `mode` says while it is unreachable."""
        ok, decision = await self._shared.call(lambda: self._primary.reserve(charges, amount_usd))
        if ok and decision is not None:
            return decision
        if self._mode == "closed":
            raise LedgerUnavailable("the shared budget ledger is unreachable")
        return await self._local.reserve(charges, amount_usd)

    async def extend(self, reservation: Reservation, extra_usd: float) -> Reservation | None:
        """Extend where the reservation lives (see the class docstring for an outage)."""
        if reservation.backend == MemoryLedger.backend:
            return await self._local.extend(reservation, extra_usd)
        ok, grown = await self._shared.call(lambda: self._primary.extend(reservation, extra_usd))
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
        await self._shared.call_or_retry_later(
            lambda: self._primary.settle(reservation, actual_usd)
        )

    async def status(self, charge: Charge) -> tuple[float, float]:
        """From the primary, else from the in-process ledger."""
        ok, found = await self._shared.call(lambda: self._primary.status(charge))
        if ok and found is not None:
            return found
        return await self._local.status(charge)

    async def aclose(self) -> None:
        """Finish retrying settles, then close both ledgers."""
        await self._shared.aclose()
        await self._primary.aclose()
        await self._local.aclose()
