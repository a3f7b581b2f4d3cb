"""Retry budget and backoff: retries can never multiply load in an outage.

The budget is a token bucket: every request deposits `ratio` tokens (at most 10 + ratio x 100
are kept), every retry withdraws one, and `min_per_s` tokens flow in per second so a quiet
gateway can still retry. When every provider fails, requests get at most one attempt plus a
`ratio` share of retries, instead of `max_attempts` each. Backoff is exponential with full
jitter and never exceeds what is left of the request's deadline.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class RetryBudget:
    """Shared by all requests of one process."""

    def __init__(self, ratio: float, min_per_s: float, clock: Callable[[], float]) -> None:
        self._ratio = ratio
        self._min_per_s = min_per_s
        self._clock = clock
        self._cap = 10.0 + ratio * 100
        self._balance = self._cap
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._balance = min(self._cap, self._balance + (now - self._last) * self._min_per_s)
        self._last = now

    def deposit(self) -> None:
        """A request arrived."""
        self._balance = min(self._cap, self._balance + self._ratio)

    def withdraw(self) -> bool:
        """Take one retry if the budget allows it."""
        self._refill()
        if self._balance >= 1.0:
            self._balance -= 1.0
            return True
        return False


def backoff_s(retry: int, base_ms: float, max_ms: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry number `retry` (1-based)."""
    ceiling = min(max_ms, base_ms * 2 ** (retry - 1))
    return rng.uniform(0, ceiling) / 1000
