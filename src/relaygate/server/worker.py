"""`relaygate worker`: a process that runs background jobs and serves nothing.

It builds the same application state as the gateway (providers, routing, limits, budgets,
usage records) so a job is executed exactly as a synchronous request would be, and consumes the
shared job queue (`jobs.queue: redis`). Start as many as needed, on any machine that reaches the
database and Redis; SIGTERM stops one gracefully (running jobs go back to the queue when their
leases lapse).
"""

from __future__ import annotations

import asyncio
import signal
import sys

from relaygate.api.fastpath import FastPaths
from relaygate.app import create_app
from relaygate.config.schema import GatewayConfig
from relaygate.server.logs import configure_logging


async def _work(config: GatewayConfig) -> None:
    fast_paths = create_app(config, worker=True).app
    assert isinstance(fast_paths, FastPaths)
    inner = fast_paths.app
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with inner.router.lifespan_context(inner):
        print(f"relaygate worker running jobs from the {config.jobs.queue} queue", flush=True)
        await stop.wait()


def work(config: GatewayConfig) -> int:
    """Run jobs until SIGTERM/SIGINT. Returns the exit code."""
    configure_logging(config)
    if config.jobs.queue == "embedded":
        print(
            "relaygate worker needs a shared queue: set jobs.queue: redis (the embedded queue"
            " runs jobs inside `relaygate serve`)",
            file=sys.stderr,
        )
        return 1
    asyncio.run(_work(config))
    return 0
