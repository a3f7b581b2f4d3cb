"""When to try a failed delivery again: Svix's schedule with jitter, and Retry-After."""

from __future__ import annotations

import random
from collections.abc import Sequence

from relaygate.errors import parse_retry_after

# Delay before attempt n+1 (the first attempt is immediate): 5 s, 5 min, 30 min, 2 h, 5 h,
# 10 h, 10 h. Eight attempts over about 27.6 hours.
SVIX_DELAYS_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER = 0.2


def next_delay(
    attempts_made: int, rng: random.Random, delays: Sequence[float] | None = None
) -> float | None:
    """Seconds until the next attempt after `attempts_made` attempts (+-20% jitter), or None
    when the schedule is exhausted (dead letter)."""
    table = SVIX_DELAYS_S if delays is None else tuple(delays)
    if attempts_made < 1 or attempts_made > len(table):
        return None
    base = table[attempts_made - 1]
    return base * rng.uniform(1 - JITTER, 1 + JITTER)


def honour_retry_after(scheduled_s: float, header: str | None, now: float | None = None) -> float:
    """The receiver's Retry-After (seconds or an HTTP date), clamped to [scheduled, 2 x
    scheduled] so a receiver can slow us down but neither stall nor hurry the schedule."""
    wanted = parse_retry_after(header, now)
    if wanted is None:
        return scheduled_s
    return min(max(wanted, scheduled_s), 2 * scheduled_s)
