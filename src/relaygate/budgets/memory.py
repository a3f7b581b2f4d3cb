"""The in-process spend ledger: the embedded default, and the fallback when Redis is unreachable."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from relaygate.budgets.base import BudgetDecision, Charge, Reservation, SeedSource, Shortfall
from relaygate.budgets.money import reserve_micros, to_micros, to_usd
from relaygate.budgets.seeding import SeedReader

CounterKey = tuple[str, str, str]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Counter:
    __slots__ = ("end", "reserved", "spent")

    def __init__(self, spent: int, end: datetime) -> None:
        self.spent = spent
        self.reserved = 0
        self.end = end


class MemoryLedger:
    """Counters in a dict, keyed by (rule id, subject id, period key).

    Missing counters are seeded (awaited) first; the check-and-take that follows has no await,
    so it is atomic within the event loop. Counters of periods that have ended are dropped, with
    the reservations that only they held (a late settle of those does nothing).
    """

    backend = "memory"

    def __init__(self, seed: SeedSource, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._seeds = SeedReader(seed)
        self._clock = clock
        self._counters: dict[CounterKey, _Counter] = {}
        self._live: dict[str, Reservation] = {}
        self._next_sweep: datetime | None = None  # the earliest period end among the counters

    async def _ensure(self, charges: Sequence[Charge]) -> None:
        self._sweep()
        missing = [c for c in charges if c.counter not in self._counters]
        if missing:
            found = await asyncio.gather(*(self._seeds.read(c.counter, c) for c in missing))
            for charge, spent in zip(missing, found, strict=True):
                if charge.counter not in self._counters:
                    self._add(charge, spent)

    def _add(self, charge: Charge, spent: int) -> _Counter:
        counter = self._counters[charge.counter] = _Counter(spent, charge.period_end)
        if self._next_sweep is None or counter.end < self._next_sweep:
            self._next_sweep = counter.end
        return counter

    def _sweep(self) -> None:
        now = self._clock()
        if self._next_sweep is None or now < self._next_sweep:
            return
        self._counters = {k: c for k, c in self._counters.items() if c.end > now}
        self._live = {
            rid: r for rid, r in self._live.items() if any(c.period_end > now for c in r.charges)
        }
        self._next_sweep = min((c.end for c in self._counters.values()), default=None)

    def _counter(self, charge: Charge) -> _Counter:
        # Missing only if its period ended (and it was swept) while a request was in flight.
        return self._counters.get(charge.counter) or self._add(charge, 0)

    async def reserve(self, charges: Sequence[Charge], amount_usd: float) -> BudgetDecision:
        """Hold `amount_usd` on every charge, or on none if a hard cap would be passed."""
        amount = reserve_micros(amount_usd)
        held = tuple(charges)
        await self._ensure(held)
        # From here to the return: no await, so no other request interleaves.
        soft: list[Charge] = []
        remaining: int | None = None
        for charge in held:
            counter = self._counter(charge)
            after = counter.spent + counter.reserved + amount
            if after > charge.limit_micros:
                if charge.rule.hard:
                    short = Shortfall(counter.spent, counter.reserved, amount)
                    return BudgetDecision(False, None, charge, (), None, short)
                soft.append(charge)
            elif charge.rule.hard:
                left = charge.limit_micros - after
                remaining = left if remaining is None else min(remaining, left)
        for charge in held:
            self._counter(charge).reserved += amount
        reservation = Reservation(uuid.uuid4().hex, held, amount, self.backend)
        if held:
            self._live[reservation.id] = reservation
        return BudgetDecision(
            True,
            reservation,
            None,
            tuple(soft),
            to_usd(remaining) if remaining is not None else None,
        )

    async def extend(self, reservation: Reservation, extra_usd: float) -> Reservation | None:
        """Grow a live reservation unless a hard cap would be passed."""
        extra = reserve_micros(extra_usd)
        if not reservation.charges:
            return replace(reservation, amount_micros=reservation.amount_micros + extra)
        live = self._live.get(reservation.id)
        if live is None:
            return None
        for charge in live.charges:
            counter = self._counter(charge)
            if charge.rule.hard and counter.spent + counter.reserved + extra > charge.limit_micros:
                return None
        for charge in live.charges:
            self._counter(charge).reserved += extra
        grown = replace(live, amount_micros=live.amount_micros + extra)
        self._live[grown.id] = grown
        return grown

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Release what the reservation holds and add the actual cost (once)."""
        actual = to_micros(actual_usd)
        live = self._live.pop(reservation.id, None)
        if live is None:
            return
        for charge in live.charges:
            counter = self._counter(charge)
            counter.reserved = max(0, counter.reserved - live.amount_micros)
            counter.spent += actual

    async def status(self, charge: Charge) -> tuple[float, float]:
        """(spent, reserved) in USD."""
        await self._ensure((charge,))
        counter = self._counter(charge)
        return to_usd(counter.spent), to_usd(counter.reserved)

    async def aclose(self) -> None:
        """Nothing to release."""
