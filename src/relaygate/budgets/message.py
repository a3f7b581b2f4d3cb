"""What a client is told when a hard cap refuses its request (nothing about anyone else)."""

from __future__ import annotations

from relaygate.budgets.base import Charge

_PERIOD = {"day": "daily", "month": "monthly"}
_SCOPE = {"tenant": "this account", "key": "this key", "user": "this user"}


def _dollars(usd: float) -> str:
    if round(usd, 2) == usd or usd >= 100:
        return f"${usd:,.2f}"
    return f"${usd:,.6f}".rstrip("0")


def refusal_message(charge: Charge) -> str:
    """E.g. "daily budget of $5.00 for this key is exhausted (resets 2026-11-23T00:00:00Z)"."""
    rule = charge.rule
    resets = charge.period_end.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{_PERIOD[rule.period]} budget of {_dollars(rule.limit_usd)} for {_SCOPE[rule.scope]}"
        f" is exhausted (resets {resets})"
    )
