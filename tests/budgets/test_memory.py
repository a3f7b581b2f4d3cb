"""The in-process ledger forgets counters of periods that have ended."""

from __future__ import annotations

from datetime import timedelta

import pytest

from relaygate.budgets import MemoryLedger, charges_for
from tests.budgets.helpers import IDS, T0, Seed, rule


async def test_counters_of_ended_periods_are_dropped() -> None:
    now = [T0]
    budget = rule(1.0)
    seed = Seed({budget.id: 0.25})
    ledger = MemoryLedger(seed, clock=lambda: now[0])
    today = charges_for([budget], IDS, T0)
    assert (await ledger.reserve(today, 0.5)).allowed
    assert len(seed.calls) == 1
    now[0] = T0 + timedelta(days=1)
    assert (await ledger.reserve(charges_for([budget], IDS, now[0]), 0.5)).allowed
    # Yesterday's counter is gone: asking about it reads the database again.
    assert await ledger.status(today[0]) == pytest.approx((0.25, 0.0))
    assert [c.period_key for c in seed.calls] == [
        today[0].period_key,
        (T0 + timedelta(days=1)).strftime("%Y-%m-%d"),
        today[0].period_key,
    ]
