"""The shared spend ledger: counters in Redis, every operation one atomic Lua script."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import redis.asyncio as redis
from redis.commands.core import AsyncScript

from relaygate.budgets import lua
from relaygate.budgets.base import (
    BudgetDecision,
    Charge,
    LedgerUnavailable,
    Reservation,
    SeedSource,
    Shortfall,
)
from relaygate.budgets.money import reserve_micros, to_micros, to_usd
from relaygate.budgets.seeding import SeedReader

# Counters outlive their period by two days, for late settles and for inspection.
GRACE = timedelta(days=2)
# Reserve/status rounds: the first may find counters to seed; the next normally succeeds.
SEED_ROUNDS = 3
NEED_SEED, REFUSED = -1, 0


def _key_part(subject: str) -> str:
    # End-user ids come from clients: long or unprintable ones are hashed ("#" marks a hash, and
    # a verbatim id never starts with "#").
    if len(subject) <= 64 and subject.isprintable() and not subject.startswith("#"):
        return subject
    return "#" + hashlib.sha256(subject.encode()).hexdigest()[:32]


class RedisLedger:
    """Budgets exact across every replica that shares the Redis.

    `reservation_ttl_s`: a reservation neither settled nor extended for this long stops counting
    (its replica is presumed dead); it must exceed the longest request. `timeout_s` bounds each
    Redis round trip (not the database reads that seed a counter).
    """

    backend = "redis"

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        seed: SeedSource,
        reservation_ttl_s: float = 900.0,
        *,
        timeout_s: float | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._seeds = SeedReader(seed)
        self._ttl_ms = max(1, int(reservation_ttl_s * 1000))
        self._timeout_s = timeout_s
        self._reserve = client.register_script(lua.RESERVE)
        self._extend = client.register_script(lua.EXTEND)
        self._settle = client.register_script(lua.SETTLE)
        self._status = client.register_script(lua.STATUS)
        self._seed = client.register_script(lua.SEED)

    def _counter(self, charge: Charge) -> str:
        rule_id, subject, period = charge.counter
        return f"{self._prefix}bg:{rule_id}:{_key_part(subject)}:{period}"

    def _keys(self, charges: Sequence[Charge]) -> list[str]:
        keys = []
        for charge in charges:
            counter = self._counter(charge)
            keys += [counter, counter + ":res", counter + ":amt"]
        return keys

    @staticmethod
    def _expire_at(charge: Charge) -> int:
        return int((charge.period_end + GRACE).timestamp())

    async def _run(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        async with asyncio.timeout(self._timeout_s):
            return await script(keys=keys, args=args)

    async def _seed_counters(self, charges: Sequence[Charge]) -> None:
        found = await asyncio.gather(*(self._seeds.read(self._counter(c), c) for c in charges))
        args: list[Any] = []
        for charge, spent in zip(charges, found, strict=True):
            args += [spent, self._expire_at(charge)]
        await self._run(self._seed, self._keys(charges), args)

    async def _seeded(self, charges: Sequence[Charge], script: AsyncScript, args: list[Any]) -> Any:
        """Run `script`, seeding the counters it reports missing and trying again."""
        keys = self._keys(charges)
        for _ in range(SEED_ROUNDS):
            result = await self._run(script, keys, args)
            if int(result[0]) != NEED_SEED:
                return result
            await self._seed_counters([charges[int(i) - 1] for i in result[1:]])
        raise LedgerUnavailable("budget counters vanished as soon as they were seeded")

    async def reserve(self, charges: Sequence[Charge], amount_usd: float) -> BudgetDecision:
        """Hold `amount_usd` on every charge, or on none if a hard cap would be passed."""
        amount = reserve_micros(amount_usd)
        held = tuple(charges)
        reservation = Reservation(uuid.uuid4().hex, held, amount, self.backend)
        if not held:
            return BudgetDecision(True, reservation, None, (), None)
        args: list[Any] = [len(held), amount, reservation.id, self._ttl_ms]
        for charge in held:
            args += [charge.limit_micros, int(charge.rule.hard), self._expire_at(charge)]
        result = await self._seeded(held, self._reserve, args)
        status, detail = int(result[0]), int(result[1])
        if status == REFUSED:
            short = Shortfall(int(result[2]), int(result[3]), amount)
            return BudgetDecision(False, None, held[detail - 1], (), None, short)
        soft = tuple(held[int(i) - 1] for i in result[2:])
        remaining = to_usd(detail) if detail >= 0 else None
        return BudgetDecision(True, reservation, None, soft, remaining)

    async def extend(self, reservation: Reservation, extra_usd: float) -> Reservation | None:
        """Grow a live reservation (and push back its expiry) unless a hard cap would be passed."""
        extra = reserve_micros(extra_usd)
        grown = replace(reservation, amount_micros=reservation.amount_micros + extra)
        if not reservation.charges:
            return grown
        args: list[Any] = [len(reservation.charges), extra, reservation.id, self._ttl_ms]
        for charge in reservation.charges:
            args += [charge.limit_micros, int(charge.rule.hard)]
        done = await self._run(self._extend, self._keys(reservation.charges), args)
        return grown if int(done) == 1 else None

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Release what the reservation holds and add the actual cost (once)."""
        actual = to_micros(actual_usd)
        if not reservation.charges:
            return
        marker = f"{self._prefix}bgs:{reservation.id}"
        await self._run(
            self._settle,
            [*self._keys(reservation.charges), marker],
            [len(reservation.charges), reservation.id, actual],
        )

    async def status(self, charge: Charge) -> tuple[float, float]:
        """(spent, reserved) in USD, expired reservations left out."""
        result = await self._seeded((charge,), self._status, [])
        return to_usd(int(result[1])), to_usd(int(result[2]))

    async def aclose(self) -> None:
        """Nothing to release: the Redis client belongs to the caller."""
