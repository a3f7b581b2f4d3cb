"""A worker asks its supervisor for a replacement once its memory stayed grown after a burst.

CPython frees memory into its own arenas and glibc's heap and rarely back to the system: after a
burst of thousands of concurrent streams a worker stays at its peak resident size, though little
of it is live (decision 0019). Every `check_interval_s` the worker compares its
resident memory with the lowest figure it has seen; when it is `growth_mb` above and nothing has
been in flight (requests, jobs running here, resumable streams held here) for `quiet_s`, it
leaves a flag named after its pid in the supervisor's directory and sends the supervisor
SIGUSR1. The supervisor (`relaygate.server.supervisor`) starts a fresh worker on the same socket
and, once that one serves, stops this one gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from relaygate.config.schema import RecycleConfig

log = logging.getLogger("relaygate.server")
_MIB = 1 << 20
# A worker still running this long after it asked (its replacement failed to start) asks again.
ASK_AGAIN_AFTER_S = 120.0


def resident_bytes() -> int | None:
    """This process's resident memory (Linux `/proc`); None where that cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class Recycler:
    """Decides when this worker should be replaced; `run` keeps checking until it is stopped."""

    def __init__(
        self,
        config: RecycleConfig,
        flag_dir: Path,
        busy: Callable[[], bool],
        *,
        resident: Callable[[], int | None] = resident_bytes,
        clock: Callable[[], float] = time.monotonic,
        ask: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.flag_dir = flag_dir
        self.busy = busy
        self.resident = resident
        self.clock = clock
        self.ask = ask or self._ask_supervisor
        self.lowest: int | None = None
        self.quiet_since: float | None = None
        self.asked_at: float | None = None

    def check(self) -> bool:
        """One look; True when it asked for a replacement (at most every ASK_AGAIN_AFTER_S)."""
        now = self.clock()
        if self.asked_at is not None and now - self.asked_at < ASK_AGAIN_AFTER_S:
            return False
        if self.busy():
            self.quiet_since = None
        elif self.quiet_since is None:
            self.quiet_since = now
        rss = self.resident()
        if rss is None:
            return False
        if self.lowest is None or rss < self.lowest:
            self.lowest = rss
        grown = rss - self.lowest >= self.config.growth_mb * _MIB
        quiet = self.quiet_since is not None and now - self.quiet_since >= self.config.quiet_s
        if not (grown and quiet):
            return False
        log.info(
            "worker %d holds %d MiB (lowest %d MiB) with nothing in flight: asking for a"
            " replacement",
            os.getpid(),
            rss // _MIB,
            self.lowest // _MIB,
        )
        self.ask()
        self.asked_at = now
        return True

    def _ask_supervisor(self) -> None:
        (self.flag_dir / str(os.getpid())).touch()
        os.kill(os.getppid(), signal.SIGUSR1)

    async def run(self) -> None:
        """Check every `check_interval_s` (the supervisor stops this worker once replaced)."""
        if self.resident() is None:
            log.info("worker recycling is off: resident memory cannot be read on this system")
            return
        while True:
            await asyncio.sleep(self.config.check_interval_s)
            try:
                self.check()
            except OSError as exc:  # the supervisor is gone, or its directory
                log.warning("worker recycling stopped: %s", type(exc).__name__)
                return
