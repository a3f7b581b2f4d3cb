"""Spend caps per tenant, API key and end user, per UTC day and month: reserve, then settle."""

from relaygate.budgets.base import (
    BudgetDecision,
    BudgetRule,
    Charge,
    LedgerUnavailable,
    Period,
    Reservation,
    SeedSource,
    Shortfall,
    SpendLedger,
)
from relaygate.budgets.charges import charges_for, period_bounds
from relaygate.budgets.factory import build_ledger
from relaygate.budgets.fallback import FallbackLedger, LedgerMode
from relaygate.budgets.memory import MemoryLedger
from relaygate.budgets.message import refusal_message
from relaygate.budgets.redis_backend import RedisLedger

__all__ = [
    "BudgetDecision",
    "BudgetRule",
    "Charge",
    "FallbackLedger",
    "LedgerMode",
    "LedgerUnavailable",
    "MemoryLedger",
    "Period",
    "RedisLedger",
    "Reservation",
    "SeedSource",
    "Shortfall",
    "SpendLedger",
    "build_ledger",
    "charges_for",
    "period_bounds",
    "refusal_message",
]
