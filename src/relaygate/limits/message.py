"""The text of a 429 for a refused request: which scope and what ran out, never whose id."""

from __future__ import annotations

import math

from relaygate.limits.base import Decision

_WHAT = {
    "requests": "requests per minute",
    "tokens": "tokens per minute",
    "concurrency": "concurrent requests",
}


def refusal_message(decision: Decision) -> str:
    """E.g. "rate limit exceeded for key: requests per minute (limit 60); retry after 2 s"."""
    if decision.denied is None:
        return "rate limit exceeded"
    subject, dimension = decision.denied
    limit = subject.limit
    value = {"requests": limit.rpm, "tokens": limit.tpm, "concurrency": limit.concurrency}[
        dimension
    ]
    text = f"rate limit exceeded for {subject.scope}: {_WHAT[dimension]} (limit {value})"
    if decision.never:
        if dimension == "tokens":
            return (
                f"{text}; this request alone needs more tokens than that, so waiting will not"
                " help: shorten it or raise the limit"
            )
        return f"{text}; waiting will not help"
    return f"{text}; retry after {max(1, math.ceil(decision.retry_after_s))} s"
