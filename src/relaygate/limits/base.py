"""Rate limits: the types every backend shares, and the algorithm they all implement.

Each subject (a tenant, an API key, an end user) may have three limits:

- requests per minute and tokens per minute are token buckets with continuous refill, the model
  OpenAI's own limiter uses: a bucket holds at most the limit (it starts full) and refills at
  limit/60 per second. A request takes 1 from every requests bucket and its estimated tokens from
  every tokens bucket.
- concurrency is a count of leases in flight; each lease expires after a time-to-live so a crashed
  process cannot hold a slot forever.

A request is admitted only if every bucket of every subject holds enough and every concurrency
count is below its limit; then it takes from all of them at once, otherwise from none. When it
ends, `settle` replaces the estimate by the actual token count in every tokens bucket (a refund,
or a further take that may leave the bucket in debt, which later requests wait out) and frees the
concurrency slots. A bucket state is (level, time of last update); the level at any later time is
`min(limit, level + elapsed * limit / 60)`, so a bucket needs no timer and an idle bucket that has
refilled can be forgotten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Scope = Literal["tenant", "key", "user"]
Dimension = Literal["requests", "tokens", "concurrency"]

SECONDS_PER_MINUTE = 60.0
# The wait reported when a concurrency limit refuses (a slot frees when some request ends).
CONCURRENCY_RETRY_S = 1.0
# How long an unsettled lease holds its concurrency slots (a crashed process's leases expire).
DEFAULT_LEASE_TTL_S = 3600.0


class LimiterUnavailable(Exception):
    """The shared limiter is unreachable and the configuration says to refuse (mode "closed")."""


@dataclass(frozen=True, slots=True)
class Limit:
    """A subject's limits; None means unlimited in that dimension."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a request counts against: scope, id (e.g. "acme", a key id, "acme/wp-42") and limit."""

    scope: Scope
    id: str
    limit: Limit


@dataclass(frozen=True, slots=True)
class Lease:
    """What `acquire` took; `settle` reconciles the tokens and frees the concurrency slots.

    `backend` names who holds it: "memory", "redis", or "none" (admitted without a limiter).
    """

    id: str
    subjects: tuple[Subject, ...]
    tokens: int
    backend: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one `acquire`.

    `retry_after_s` is 0 when allowed, else the seconds until the request could be admitted;
    `denied` names the subject and dimension that refused (the one with the longest wait);
    `never` is True when no wait helps (the request is larger than a whole minute's allowance);
    its `retry_after_s` is then `math.inf` and the headers say `x-should-retry: false`.
    `headers` are OpenAI's `x-ratelimit-*` headers (plus `retry-after` on refusal).
    """

    allowed: bool
    lease: Lease | None
    retry_after_s: float
    denied: tuple[Subject, Dimension] | None
    never: bool
    headers: dict[str, str]


class Limiter(Protocol):
    """Checks and takes rate limits for a request, and gives back what was taken when it ends."""

    async def acquire(self, subjects: Sequence[Subject], tokens: int) -> Decision:
        """Admit (taking from every subject) or refuse (taking nothing) a request of `tokens`."""
        ...

    async def settle(self, lease: Lease, actual_tokens: int) -> None:
        """Reconcile tokens and free concurrency slots; a second call for a lease does nothing."""
        ...

    async def aclose(self) -> None:
        """Release resources (not a Redis client passed in: its owner closes it)."""
        ...
