"""What small operations on the request path cost when the CPU caches are cold.

At 100 requests/s a worker sleeps ~10 ms between requests while other processes run, so each
request meets cold caches and every step costs several times its cost in a warm loop (see
docs/performance.md). This tool times single calls of a few alternatives, each after walking
a large list to push the caches out, and prints the median. The eviction is harsher than what a
worker meets, so the figures are upper bounds: compare alternatives with each other, not with
the timeline.

    .venv/bin/python -m bench.cold [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.datastructures import Headers

from relaygate.api.headers import IndexedHeaders

RAW_HEADERS = [
    (b"host", b"127.0.0.1:8080"),
    (b"user-agent", b"OpenAI/Python 1.99.0"),
    (b"authorization", b"Bearer rg_live_0123456789abcdef0123456789abcdef"),
    (b"content-type", b"application/json"),
    (b"content-length", b"120"),
    (b"x-request-id", b"wp-42"),
]
# The lookups one chat completion makes: signature headers, the key, cost cap, client
# timeouts, resumable streams. All but one are absent.
LOOKUPS = (
    "x-relaygate-key-id",
    "x-relaygate-timestamp",
    "x-relaygate-signature",
    "authorization",
    "x-relaygate-max-cost-usd",
    "x-relaygate-timeout-ms",
    "x-stainless-timeout",
    "x-relaygate-resumable",
)


class Evictor:
    """Walks a list of a few tens of MB between calls."""

    def __init__(self) -> None:
        self._items = list(range(2_000_000))

    def __call__(self) -> None:
        total = 0
        for item in self._items[::7]:
            total += item


def cold_us(call: Callable[[], object], calls: int, evict: Evictor) -> float:
    """Median microseconds of `call` right after an eviction."""
    times = []
    for _ in range(calls):
        evict()
        started = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - started)
    return statistics.median(times) / 1000


def _headers(cls: type[Headers]) -> Callable[[], object]:
    def lookups() -> object:
        headers = cls(raw=list(RAW_HEADERS))
        return [headers.get(name) for name in LOOKUPS]

    return lookups


def _nothing() -> None:
    """A timer callback that does nothing."""


async def _timers(calls: int, evict: Evictor) -> dict[str, float]:
    loop = asyncio.get_running_loop()

    async def with_timeout() -> None:
        async with asyncio.timeout(600):  # noqa: ASYNC100 (the context's own cost is timed)
            pass

    async def timed(make: Callable[[], object]) -> float:
        times = []
        for _ in range(calls):
            evict()
            started = time.perf_counter_ns()
            result = make()
            if asyncio.iscoroutine(result):
                await result
            times.append(time.perf_counter_ns() - started)
        return statistics.median(times) / 1000

    return {
        "asyncio.timeout(600) entered and left": await timed(with_timeout),
        "loop.call_later(600) and cancel": await timed(
            lambda: loop.call_later(600, _nothing).cancel()
        ),
    }


def run(calls: int) -> dict[str, float]:
    evict = Evictor()
    key = b"rg_live_0123456789abcdef0123456789abcdef"
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    expires_ts = expires.timestamp()
    counter = itertools.count(1)
    figures = {
        "8 header lookups, Starlette Headers": cold_us(_headers(Headers), calls, evict),
        "8 header lookups, IndexedHeaders": cold_us(_headers(IndexedHeaders), calls, evict),
        "request id, uuid4": cold_us(lambda: "req_" + uuid.uuid4().hex, calls, evict),
        "request id, prefix and counter": cold_us(
            lambda: f"req_0123456789abcdef{next(counter):016x}", calls, evict
        ),
        "key expiry, datetime": cold_us(
            lambda: datetime.fromtimestamp(time.time(), UTC) >= expires, calls, evict
        ),
        "key expiry, Unix time": cold_us(lambda: time.time() >= expires_ts, calls, evict),
        "sha256 of a key, hashlib": cold_us(lambda: hashlib.sha256(key).hexdigest(), calls, evict),
    }
    figures.update(asyncio.run(_timers(calls, evict)))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="timed calls per operation")
    args = parser.parse_args(argv)
    for name, micros in run(args.calls).items():
        print(f"{micros:8.1f} µs  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
