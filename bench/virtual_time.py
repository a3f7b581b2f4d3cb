"""An asyncio event loop on a virtual clock: a discrete-event simulation for the benchmarks.

`loop.time()` is a number that only moves when nothing is ready to run: then it jumps to the
next timer (an `asyncio.sleep`, an `asyncio.timeout`, a `call_later`) instead of waiting for it.
Every coroutine sees the same clock, so events happen in the order of their virtual times and a
coroutine learns of another's result only once its virtual time has come: a router fed by this
loop cannot see the outcome of a call that has not finished yet. An hour of traffic runs in
the CPU time its callbacks take.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """Polls without blocking, and moves the clock by the timeout it was asked to wait."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise RuntimeError("the simulation would wait forever: nothing is scheduled")
        self._clock[0] += timeout
        return super().select(0)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose `time()` is virtual, starting at 0."""

    def __init__(self) -> None:
        self._virtual = [0.0]
        super().__init__(_JumpingSelector(self._virtual))

    def time(self) -> float:
        return self._virtual[0]


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on a fresh virtual-time loop."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)
