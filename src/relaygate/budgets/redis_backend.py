"""The shared spend ledger: counters in Redis, every operation one atomic Lua script."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import redis.asyncio as redis

from relaygate.budgets import lua
from relaygate.budgets.base import (
    BudgetDecision,
    Charge,
    Reservation,
    SeedSource,
    reserve_micros,
    to_micros,
)

# Counters outlive their period by two days, for late settles and for inspection.
GRACE = timedelta(days=2)
SEED_ATTEMPTS = 3


class RedisLedger:
    """Budgets exact across every replica that shares the Redis."""

    backend = "redis"

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        seed: SeedSource,
        reservation_ttl_s: float = 900.0,
    ) -> None:
        self._prefix = prefix
        self._seed = seed
        self._ttl_ms = int(reservation_ttl_s * 1000)
        self._reserve = client.register_script(lua.RESERVE)
        self._extend = client.register_script(lua.EXTEND)
        self._settle = client.register_script(lua.SETTLE)
        self._seed_script = client.register_script(lua.SEED)
        self._client = client

    def _counter(self, charge: Charge) -> str:
        return f"{self._prefix}bg:{charge.counter}"

    def _keys(self, charges: Sequence[Charge]) -> list[str]:
        keys = []
        for charge in charges:
            counter = self._counter(charge)
            keys += [counter, counter + ":res", counter + ":amt"]
        return keys

    @staticmethod
    def _expire_at(charge: Charge) -> int:
        return int((charge.period_end + GRACE).timestamp())

    async def _seed_counter(self, charge: Charge) -> None:
        spent = to_micros(await self._seed(charge))
        await self._seed_script(keys=[self._counter(charge)], args=[spent, self._expire_at(charge)])

    async def reserve(self, charges: Sequence[Charge], amount_usd: float) -> BudgetDecision:
        """Hold `amount_usd` on every charge, or refuse if a hard cap would be passed."""
        amount = reserve_micros(amount_usd)
        reservation_id = uuid.uuid4().hex
        args: list[Any] = [len(charges), amount, reservation_id, self._ttl_ms]
        for charge in charges:
            args += [charge.limit_micros, int(charge.rule.hard), self._expire_at(charge)]
        for _ in range(SEED_ATTEMPTS):
            result = await self._reserve(keys=self._keys(charges), args=args)
            status, index = int(result[0]), int(result[1])
            if status == -1:
                await self._seed_counter(charges[index - 1])
                continue
            if status == 0:
                return BudgetDecision(False, None, charges[index - 1], (), None)
            soft = tuple(charges[int(i) - 1] for i in result[2:])
            reservation = Reservation(reservation_id, tuple(charges), amount, self.backend)
            remaining = index / 1_000_000 if index >= 0 else None
            return BudgetDecision(True, reservation, None, soft, remaining)
        raise RuntimeError("budget counters vanished while seeding them")

    async def extend(self, reservation: Reservation, extra_usd: float) -> Reservation | None:
        """Grow a live reservation unless a hard cap would be passed."""
        extra = reserve_micros(extra_usd)
        args: list[Any] = [len(reservation.charges), extra, reservation.id, self._ttl_ms]
        for charge in reservation.charges:
            args += [charge.limit_micros, int(charge.rule.hard)]
        grown = await self._extend(keys=self._keys(reservation.charges), args=args)
        if int(grown) != 1:
            return None
        return replace(reservation, amount_micros=reservation.amount_micros + extra)

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Replace the held amount by the actual cost (once)."""
        marker = f"{self._prefix}bg:settled:{reservation.id}"
        await self._settle(
            keys=[*self._keys(reservation.charges), marker],
            args=[len(reservation.charges), reservation.id, to_micros(actual_usd)],
        )

    async def status(self, charge: Charge) -> tuple[float, float]:
        """(spent, reserved) in USD."""
        spent, reserved = await self._client.hmget(self._counter(charge), ["spent", "reserved"])
        return int(spent or 0) / 1_000_000, int(reserved or 0) / 1_000_000

    async def aclose(self) -> None:
        """The Redis client belongs to the caller."""
