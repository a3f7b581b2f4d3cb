"""Rate limits per tenant, API key and end user: requests/min, tokens/min, concurrency."""

from relaygate.limits.base import (
    Decision,
    Dimension,
    Lease,
    Limit,
    Limiter,
    LimiterUnavailable,
    Scope,
    Subject,
)
from relaygate.limits.factory import build_limiter
from relaygate.limits.fallback import FallbackLimiter, FallbackMode
from relaygate.limits.headers import duration
from relaygate.limits.memory import MemoryLimiter
from relaygate.limits.message import refusal_message
from relaygate.limits.redis_backend import RedisLimiter

__all__ = [
    "Decision",
    "Dimension",
    "FallbackLimiter",
    "FallbackMode",
    "Lease",
    "Limit",
    "Limiter",
    "LimiterUnavailable",
    "MemoryLimiter",
    "RedisLimiter",
    "Scope",
    "Subject",
    "build_limiter",
    "duration",
    "refusal_message",
]
