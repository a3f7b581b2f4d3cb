"""Fire-and-forget work that must still finish: tasks are kept and awaited at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("relaygate")


class Background:
    """Runs coroutines off the request path; `aclose` waits for the ones still running."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "background") -> None:
        """Start `coro`; failures are logged, never raised into a request."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s failed: %s", task.get_name(), type(task.exception()).__name__)

    async def aclose(self, grace_s: float = 10.0) -> None:
        """Wait (up to `grace_s` seconds) for running tasks."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)
