"""Spend caps (budgets) per tenant, API key and end user, per UTC day or calendar month.

Reserve, then settle. Before the upstream call the gateway reserves the most the request can cost.
The reservation is refused if, for any hard cap it counts against, spent + reserved + amount
would pass the limit; otherwise the amount is added to `reserved` of every counter (hard and
soft) in the same atomic step: one event-loop step in memory, one Lua script in Redis, so
concurrent requests on any number of replicas see each other's reservations. After the call,
`settle` moves the reservation into `spent` at the actual cost.

Why overshoot is bounded: admission keeps spent + reserved <= limit on every hard cap, and
settling replaces a reservation by an actual cost that is normally no larger, so the cap holds.
Spend passes a cap only when a request costs more than it holds (a provider that ignores
max_tokens, a stream between two `extend` steps), and then by that request's excess, at most one
reservation step. Two things loosen this on purpose: a Redis reservation that is neither settled
nor extended within its TTL stops counting (so a crashed replica does not hold budget forever),
and in "local" fallback mode each replica counts on its own while Redis is unreachable.

Soft caps never refuse: the decision lists those the request crosses, so the gateway can
downgrade the route and raise an alert. Counters start from the spend already recorded in the
usage ledger (a `SeedSource`), so a restart or a lost Redis key does not reset a budget.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from relaygate.budgets.money import to_micros

Period = Literal["day", "month"]
BudgetScope = Literal["tenant", "key", "user"]
EVERY_USER = "*"


class LedgerUnavailable(Exception):
    """Spend cannot be tracked right now: Redis is unreachable in mode "closed", or the spend
    already recorded could not be read. The gateway answers 503."""


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """One budget as configured through the admin API.

    `subject` is the tenant id, a key id, an end-user id, or "*" for a "user" rule that applies
    to each end user separately. `pace`: the budget is meant to be spent evenly over its period;
    routing weighs price more while its spend runs ahead of that pace and less while it runs
    behind (routing/pacing.py).
    """

    id: str
    tenant_id: str
    scope: BudgetScope
    subject: str
    period: Period
    limit_usd: float
    hard: bool
    downgrade_to: str | None = None
    alert: bool = False
    pace: bool = False


@dataclass(frozen=True, slots=True)
class Charge:
    """One rule applied to one concrete subject in one period."""

    rule: BudgetRule
    subject_id: str
    period_key: str
    period_start: datetime
    period_end: datetime

    @property
    def counter(self) -> tuple[str, str, str]:
        """The counter this charge adds to: (rule id, subject id, period key)."""
        return (self.rule.id, self.subject_id, self.period_key)

    @property
    def limit_micros(self) -> int:
        """The cap in micro-dollars."""
        return to_micros(self.rule.limit_usd)


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money held for one request until it settles; `backend` names the ledger that holds it."""

    id: str
    charges: tuple[Charge, ...]
    amount_micros: int
    backend: str


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Why a hard cap refused, in micro-dollars, as the ledger saw it in the refusing step:
    spent + reserved + amount > the cap's limit."""

    spent_micros: int  # settled spend of the counter
    reserved_micros: int  # held by requests still in flight
    amount_micros: int  # what this request needed to hold: the most it can cost


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """The answer to one `reserve`.

    `refused_by` is the hard cap that refused, `shortfall` its numbers; `soft_exceeded` the
    soft caps this request crosses (spent + reserved + amount > limit); `remaining_usd` the
    smallest room left under a hard cap after this reservation (None without hard caps or when
    refused).
    """

    allowed: bool
    reservation: Reservation | None
    refused_by: Charge | None
    soft_exceeded: tuple[Charge, ...]
    remaining_usd: float | None
    shortfall: Shortfall | None = None


SeedSource = Callable[[Charge], Awaitable[float]]
"""USD already recorded in the database for a charge's rule, subject and period."""


class SpendLedger(Protocol):
    """Reserves, extends and settles spend against budgets."""

    async def reserve(self, charges: Sequence[Charge], amount_usd: float) -> BudgetDecision:
        """Hold `amount_usd` on every charge, or on none if a hard cap would be passed.

        No charges: allowed, with a reservation of no charges.
        """
        ...

    async def extend(self, reservation: Reservation, extra_usd: float) -> Reservation | None:
        """Grow a live reservation; None (and nothing changed) if a hard cap would be passed."""
        ...

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Release the reservation and add the actual cost; a second call does nothing."""
        ...

    async def status(self, charge: Charge) -> tuple[float, float]:
        """(spent, reserved) in USD for the charge's counter."""
        ...

    async def aclose(self) -> None:
        """Release resources (not a Redis client passed in)."""
        ...
