"""Spend caps: budgets per tenant, key and end user, per UTC day or month.

Before a call, the gateway reserves the most the request can cost; the reservation is refused if
spent + reserved + the new amount would pass a hard cap. After the call, `settle` replaces the
reservation by the actual cost. Concurrent requests (on any replica, with Redis) therefore cannot
together pass a hard cap: only a request that costs more than it reserved can, by at most its own
excess. Soft caps never refuse; the gateway is told which it crossed, to downgrade or alert.

Money is counted in integer micro-dollars: reservations rounded up, actual costs to nearest.
Counters start from the spend already in the usage ledger (a `SeedSource`), so a restart or a lost
Redis key does not reset a budget.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

Period = Literal["day", "month"]
BudgetScope = Literal["tenant", "key", "user"]
EVERY_USER = "*"


class LedgerUnavailable(Exception):
    """The shared ledger is unreachable and the configuration says to refuse (mode "closed")."""


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """One budget as configured through the admin API."""

    id: str
    tenant_id: str
    scope: BudgetScope
    subject: str
    period: Period
    limit_usd: float
    hard: bool
    downgrade_to: str | None = None
    alert: bool = False


@dataclass(frozen=True, slots=True)
class Charge:
    """One rule applied to one concrete subject in one period."""

    rule: BudgetRule
    subject_id: str
    period_key: str
    period_start: datetime
    period_end: datetime

    @property
    def counter(self) -> str:
        """The counter this charge adds to."""
        return f"{self.rule.id}:{self.subject_id}:{self.period_key}"

    @property
    def limit_micros(self) -> int:
        """The cap in micro-dollars."""
        return to_micros(self.rule.limit_usd)


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money held for one request until it settles."""

    id: str
    charges: tuple[Charge, ...]
    amount_micros: int
    backend: str


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """The answer to one `reserve`."""

    allowed: bool
    reservation: Reservation | None
    refused_by: Charge | None
    soft_exceeded: tuple[Charge, ...]
    remaining_usd: float | None


SeedSource = Callable[[Charge], Awaitable[float]]


class SpendLedger(Protocol):
    """Reserves, extends and settles spend against budgets."""

    async def reserve(self, charges: Sequence[Charge], amount_usd: float) -> BudgetDecision:
        """Hold `amount_usd` on every charge, or on none if a hard cap would be passed."""
        ...

    async def extend(self, reservation: Reservation, extra_usd: float) -> Reservation | None:
        """Grow a live reservation; None (and nothing changed) if a hard cap would be passed."""
        ...

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Replace the reservation by the actual cost; a second call does nothing."""
        ...

    async def status(self, charge: Charge) -> tuple[float, float]:
        """(spent, reserved) in USD for the charge's counter."""
        ...

    async def aclose(self) -> None:
        """Release resources (not a Redis client passed in)."""
        ...


def to_micros(usd: float) -> int:
    """USD to micro-dollars, to nearest."""
    return round(usd * 1_000_000)


def reserve_micros(usd: float) -> int:
    """USD to micro-dollars, rounded up (a reservation never holds less than asked)."""
    return max(0, math.ceil(usd * 1_000_000 - 1e-6))


def period_bounds(period: Period, now: datetime) -> tuple[str, datetime, datetime]:
    """The period key and its [start, end) in UTC."""
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start, start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start.strftime("%Y-%m"), start, end


def _subject_of(rule: BudgetRule, ids: Mapping[str, str | None]) -> str | None:
    current = ids.get(rule.scope)
    if current is None:
        return None
    if rule.scope == "tenant":
        return current if rule.subject in ("", EVERY_USER, current) else None
    if rule.scope == "user" and rule.subject == EVERY_USER:
        return current
    return current if rule.subject == current else None


def charges_for(
    rules: Iterable[BudgetRule], ids: Mapping[str, str | None], now: datetime
) -> list[Charge]:
    """The charges a request makes: `ids` maps "tenant", "key", "user" to the request's ids.

    A user's own budget replaces the every-user ("*") budget of the same period and kind.
    """
    picked: list[Charge] = []
    for rule in rules:
        subject = _subject_of(rule, ids)
        if subject is None:
            continue
        key, start, end = period_bounds(rule.period, now)
        picked.append(Charge(rule, subject, key, start, end))
    own = {
        (c.rule.period, c.rule.hard)
        for c in picked
        if c.rule.scope == "user" and c.rule.subject != EVERY_USER
    }
    return [
        c
        for c in picked
        if not (
            c.rule.scope == "user"
            and c.rule.subject == EVERY_USER
            and (c.rule.period, c.rule.hard) in own
        )
    ]
