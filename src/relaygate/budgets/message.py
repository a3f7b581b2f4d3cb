"""What a client is told when a hard cap refuses its request: the budget, its numbers as the
ledger saw them, and when it resets (nothing about any other tenant, key or user)."""

from __future__ import annotations

from relaygate.budgets.base import Charge, Shortfall
from relaygate.budgets.money import to_usd

_PERIOD = {"day": "daily", "month": "monthly"}
_SCOPE = {"tenant": "this account", "key": "this key", "user": "this user"}


def _dollars(usd: float) -> str:
    if round(usd, 2) == usd or usd >= 100:
        return f"${usd:,.2f}"
    return f"${usd:,.6f}".rstrip("0")


def refusal_message(charge: Charge, shortfall: Shortfall | None = None) -> str:
    """Why `charge`'s hard cap refused a request.

    Spent to the limit: "daily budget of $5.00 for this key is exhausted ($5.00 spent; resets
    2026-11-23T00:00:00Z)". Otherwise the refusal came from the up-front reservation (the most
    the request can cost did not fit in what is left), and the message says so with the
    numbers. Without `shortfall`: the short form, "... is exhausted (resets ...)".
    """
    rule = charge.rule
    resets = charge.period_end.strftime("%Y-%m-%dT%H:%M:%SZ")
    budget = f"{_PERIOD[rule.period]} budget of {_dollars(rule.limit_usd)} for {_SCOPE[rule.scope]}"
    if shortfall is None:
        return f"{budget} is exhausted (resets {resets})"
    spent = shortfall.spent_micros
    if spent >= charge.limit_micros:
        return f"{budget} is exhausted ({_dollars(to_usd(spent))} spent; resets {resets})"
    left = max(0, charge.limit_micros - spent - shortfall.reserved_micros)
    return (
        f"{budget} cannot cover this request: it may cost up to"
        f" {_dollars(to_usd(shortfall.amount_micros))} (its prompt and its maximum output at the"
        f" route's highest price), more than the {_dollars(to_usd(left))} left (limit"
        f" {_dollars(rule.limit_usd)}, spent {_dollars(to_usd(spent))}, held for requests in"
        f" flight {_dollars(to_usd(shortfall.reserved_micros))}); lower max_tokens, or wait for"
        f" the reset at {resets}"
    )
