"""Reading the spend already recorded for a counter: once, however many requests ask at once."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Hashable

from relaygate.budgets.base import Charge, LedgerUnavailable, SeedSource
from relaygate.budgets.money import to_micros


class SeedReader:
    """Calls the `SeedSource`, one call per counter at a time: concurrent requests for a counter
    nobody has read yet share one database query (e.g. at midnight UTC, when every day counter
    starts afresh). A failing or nonsensical seed raises `LedgerUnavailable`, never an error that
    could pass for an unreachable Redis."""

    def __init__(self, seed: SeedSource) -> None:
        self._seed = seed
        self._flights: dict[Hashable, asyncio.Future[int]] = {}

    async def read(self, key: Hashable, charge: Charge) -> int:
        """The spend recorded for `charge`, in micro-dollars."""
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._read(charge))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        # A caller that is cancelled leaves the query running for the others.
        return await asyncio.shield(flight)

    def _landed(self, key: Hashable, done: asyncio.Future[int]) -> None:
        if self._flights.get(key) is done:
            del self._flights[key]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have been cancelled

    async def _read(self, charge: Charge) -> int:
        try:
            usd = float(await self._seed(charge))
        except Exception as exc:
            raise LedgerUnavailable("the spend already recorded could not be read") from exc
        if not math.isfinite(usd):
            raise LedgerUnavailable("the spend already recorded is not a number")
        return to_micros(max(0.0, usd))
