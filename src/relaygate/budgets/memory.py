"""The in-process spend ledger (embedded default, and the fallback when Redis is unreachable)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from relaygate.budgets.base import (
    BudgetDecision,
    Charge,
    Reservation,
    SeedSource,
    reserve_micros,
    to_micros,
)


class _Counter:
    __slots__ = ("end", "reserved", "spent")

    def __init__(self, spent: int, end: datetime) -> None:
        self.spent = spent
        self.reserved = 0
        self.end = end


class MemoryLedger:
    """Counters in a dict. Check-and-take has no await inside, so it is atomic in one loop."""

    backend = "memory"

    def __init__(self, seed: SeedSource) -> None:
        self._seed = seed
        self._counters: dict[str, _Counter] = {}
        self._live: dict[str, Reservation] = {}

    async def _ensure(self, charges: Sequence[Charge]) -> None:
        for charge in charges:
            if charge.counter not in self._counters:
                spent = to_micros(await self._seed(charge))
                # Another coroutine may have seeded it while we awaited: keep the first.
                self._counters.setdefault(charge.counter, _Counter(spent, charge.period_end))
        self._drop_past_periods()

    def _drop_past_periods(self) -> None:
        now = datetime.now(UTC)
        if len(self._counters) > 1024 or any(c.end <= now for c in self._counters.values()):
            for name in [n for n, c in self._counters.items() if c.end <= now]:
                del self._counters[name]

    def _counter(self, charge: Charge) -> _Counter:
        counter = self._counters.get(charge.counter)
        if counter is None:  # dropped at a period's end while a request was in flight
            counter = self._counters[charge.counter] = _Counter(0, charge.period_end)
        return counter

    async def reserve(self, charges: Sequence[Charge], amount_usd: float) -> BudgetDecision:
        """Hold `amount_usd` on every charge, or refuse if a hard cap would be passed."""
        await self._ensure(charges)
        amount = reserve_micros(amount_usd)
        soft: list[Charge] = []
        remaining: int | None = None
        for charge in charges:
            counter = self._counter(charge)
            after = counter.spent + counter.reserved + amount
            if after > charge.limit_micros:
                if charge.rule.hard:
                    return BudgetDecision(False, None, charge, (), None)
                soft.append(charge)
            elif charge.rule.hard:
                left = charge.limit_micros - after
                remaining = left if remaining is None else min(remaining, left)
        for charge in charges:
            self._counter(charge).reserved += amount
        reservation = Reservation(uuid.uuid4().hex, tuple(charges), amount, self.backend)
        self._live[reservation.id] = reservation
        return BudgetDecision(
            True,
            reservation,
            None,
            tuple(soft),
            remaining / 1_000_000 if remaining is not None else None,
        )

    async def extend(self, reservation: Reservation, extra_usd: float) -> Reservation | None:
        """Grow a live reservation unless a hard cap would be passed."""
        if reservation.id not in self._live:
            return None
        extra = reserve_micros(extra_usd)
        for charge in reservation.charges:
            counter = self._counter(charge)
            if charge.rule.hard and counter.spent + counter.reserved + extra > charge.limit_micros:
                return None
        for charge in reservation.charges:
            self._counter(charge).reserved += extra
        grown = replace(reservation, amount_micros=reservation.amount_micros + extra)
        self._live[grown.id] = grown
        return grown

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Replace the held amount by the actual cost (once)."""
        held = self._live.pop(reservation.id, None)
        if held is None:
            return
        actual = to_micros(actual_usd)
        for charge in held.charges:
            counter = self._counter(charge)
            counter.reserved = max(0, counter.reserved - held.amount_micros)
            counter.spent += actual

    async def status(self, charge: Charge) -> tuple[float, float]:
        """(spent, reserved) in USD."""
        await self._ensure((charge,))
        counter = self._counter(charge)
        return counter.spent / 1_000_000, counter.reserved / 1_000_000

    async def aclose(self) -> None:
        """Nothing to release."""
