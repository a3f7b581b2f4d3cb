"""One delivery attempt: signed POST to a vetted address, no redirects, bounded time and size.

The receiver's answer is classified and then discarded: only its status and our latency are
kept (never its body, which could carry anything back to the caller).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import aiohttp
from yarl import URL

from relaygate.webhooks.ssrf import (
    Destination,
    InvalidHost,
    UnsafeDestination,
    VettingResolver,
    literal,
)

Kind = Literal["delivered", "retry", "disable", "failed"]
READ_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended. `retry`: schedule another; `disable`: the endpoint asked to stop
    (410); `failed`: permanent for this message (an unsafe destination)."""

    kind: Kind
    status: int | None
    latency_ms: float
    error: str | None = None
    retry_after: str | None = None


def classify(status: int) -> Kind:
    """2xx delivered, 410 disable, anything else (redirects included) retried later."""
    if 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "disable"
    return "retry"


async def deliver(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    destination: Destination,
    timeout_s: float,
) -> Outcome:
    """POST `body` to `url` once; connection errors and timeouts are `retry` outcomes."""
    started = time.monotonic()

    def took() -> float:
        return (time.monotonic() - started) * 1000

    target = URL(url)
    host = target.host or ""
    try:
        try:
            address = literal(host)
        except InvalidHost as exc:
            raise UnsafeDestination(str(exc)) from None
        if address is not None:  # aiohttp does not consult the resolver for IP literals
            destination.check(host, address)
            # Connect to the address the guard vetted, never to a spelling the resolver reads.
            target = target.with_host(str(address))
        connector = aiohttp.TCPConnector(
            resolver=VettingResolver(destination), use_dns_cache=False, force_close=True
        )
        async with (
            aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as session,
            session.post(
                target, data=body, headers=dict(headers), allow_redirects=False
            ) as response,
        ):
            await response.content.read(READ_LIMIT)
            status = response.status
            retry_after = response.headers.get("retry-after")
    except UnsafeDestination as exc:
        return Outcome("failed", None, took(), f"unsafe destination: {exc}")
    except TimeoutError:
        return Outcome("retry", None, took(), "timeout")
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.__cause__, UnsafeDestination) or isinstance(
            getattr(exc, "os_error", None), UnsafeDestination
        ):
            return Outcome("failed", None, took(), f"unsafe destination: {exc.__cause__}")
        return Outcome("retry", None, took(), "connection failed")
    except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
        return Outcome("retry", None, took(), f"connection error ({type(exc).__name__})")
    kind = classify(status)
    error = None
    if 300 <= status < 400:
        error = f"redirect {status} not followed"
    elif kind != "delivered":
        error = f"HTTP {status}"
    throttled = status == 429 or status >= 500
    return Outcome(kind, status, took(), error, retry_after if throttled else None)
