"""Rules, ids, dates and seed sources shared by the budget tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from relaygate.budgets import BudgetRule, Charge, Period

IDS: dict[str, str | None] = {"tenant": "acme", "key": "k1", "user": "wp-7"}


def _next_month_start(now: datetime) -> datetime:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


# A moment in the future, on the 10th of next month: days 10-12 are in the same month, and
# Redis keys of its periods do not expire during the test.
T0 = _next_month_start(datetime.now(UTC)) + timedelta(days=9, hours=12)


def rule(
    limit: float,
    *,
    scope: str = "key",
    subject: str = "k1",
    period: Period = "day",
    hard: bool = True,
    downgrade_to: str | None = None,
    alert: bool = False,
    tenant: str = "acme",
) -> BudgetRule:
    """A budget with an id derived from its settings."""
    return BudgetRule(
        id=f"b-{tenant}-{scope}-{subject}-{period}-{limit}-{'hard' if hard else 'soft'}",
        tenant_id=tenant,
        scope=scope,  # type: ignore[arg-type]
        subject=subject,
        period=period,
        limit_usd=limit,
        hard=hard,
        downgrade_to=downgrade_to,
        alert=alert,
    )


class Seed:
    """A seed source: the recorded spend per rule id, the calls made, and an optional gate that
    holds every call until `release()` (to make concurrent seeding really concurrent)."""

    def __init__(self, spent: dict[str, float] | None = None, *, gated: bool = False) -> None:
        self.spent = dict(spent or {})
        self.calls: list[Charge] = []
        self.failing = False
        self._gate = asyncio.Event()
        if not gated:
            self._gate.set()
        self._arrivals = asyncio.Condition()

    def release(self) -> None:
        """Let held calls answer."""
        self._gate.set()

    async def called(self, times: int) -> None:
        """Wait until the seed has been called `times` times."""
        async with self._arrivals:
            await self._arrivals.wait_for(lambda: len(self.calls) >= times)

    async def __call__(self, charge: Charge) -> float:
        async with self._arrivals:
            self.calls.append(charge)
            self._arrivals.notify_all()
        await self._gate.wait()
        if self.failing:
            raise ConnectionRefusedError("database down")
        return self.spent.get(charge.rule.id, 0.0)
