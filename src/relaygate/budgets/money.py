"""Money in integer micro-dollars: reservations rounded up, actual costs to nearest."""

from __future__ import annotations

import math

MICROS_PER_USD = 1_000_000


def _checked(usd: float) -> float:
    if not math.isfinite(usd) or usd < 0:
        raise ValueError(f"an amount of money must be a finite number >= 0, not {usd!r}")
    return usd


def to_micros(usd: float) -> int:
    """USD to micro-dollars, to nearest (actual costs, recorded spend)."""
    return round(_checked(usd) * MICROS_PER_USD)


def reserve_micros(usd: float) -> int:
    """USD to micro-dollars, rounded up: a reservation never holds less than asked.

    A float like 0.3 is 300000.00000000006 micro-dollars; that noise is not a micro-dollar more.
    """
    return max(0, math.ceil(_checked(usd) * MICROS_PER_USD - 1e-6))


def to_usd(micros: int) -> float:
    """Micro-dollars to USD."""
    return micros / MICROS_PER_USD
