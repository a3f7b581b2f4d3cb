"""OpenAI's rate-limit response headers, and its duration format ("1s", "6m0s", "120ms", "1.5s")."""

from __future__ import annotations

import math

from relaygate.limits.base import SECONDS_PER_MINUTE


def duration(seconds: float) -> str:
    """A duration as OpenAI writes it (Go's format, at millisecond precision, rounded up)."""
    ms = math.ceil(seconds * 1000.0 - 1e-6)
    if ms < 1000:
        return f"{ms}ms" if ms > 0 else "0s"
    if ms < 60_000:
        return f"{ms / 1000:g}s"  # below 60 s at most 5 significant digits: exact
    minutes, rest = divmod(ms, 60_000)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m{rest / 1000:g}s"
    return f"{minutes}m{rest / 1000:g}s"


def _count(level: float) -> str:
    """Whole units left in a bucket (floor, at least 0)."""
    return str(int(level)) if level > 0.0 else "0"


def until_full(limit: int, level: float) -> float:
    """Seconds until a bucket of `limit` per minute at `level` is full again."""
    if level >= limit or limit <= 0:
        return 0.0
    return (limit - level) * SECONDS_PER_MINUTE / limit


def rate_headers(
    req_limit: int | None,
    req_level: float,
    tok_limit: int | None,
    tok_level: float,
) -> dict[str, str]:
    """`x-ratelimit-*` headers for the most constrained requests and tokens buckets.

    A dimension no subject limits gets no headers; levels are after the request (if admitted).
    """
    headers: dict[str, str] = {}
    if req_limit is not None:
        headers["x-ratelimit-limit-requests"] = str(req_limit)
        headers["x-ratelimit-remaining-requests"] = _count(req_level)
        headers["x-ratelimit-reset-requests"] = duration(until_full(req_limit, req_level))
    if tok_limit is not None:
        headers["x-ratelimit-limit-tokens"] = str(tok_limit)
        headers["x-ratelimit-remaining-tokens"] = _count(tok_level)
        headers["x-ratelimit-reset-tokens"] = duration(until_full(tok_limit, tok_level))
    return headers


def add_refusal(headers: dict[str, str], retry_after_s: float) -> None:
    """Add `retry-after` (whole seconds, rounded up, at least 1) and `retry-after-ms`.

    An infinite wait (the request can never be admitted) gets `x-should-retry: false` instead,
    which the official SDKs obey.
    """
    if math.isinf(retry_after_s):
        headers["x-should-retry"] = "false"
        return
    ms = max(1, math.ceil(retry_after_s * 1000.0 - 1e-6))
    headers["retry-after"] = str(max(1, math.ceil(ms / 1000)))
    headers["retry-after-ms"] = str(ms)
