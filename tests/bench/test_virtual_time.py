"""The benchmarks' virtual clock: events happen in virtual-time order, timers and timeouts fire
at their virtual time, and nothing is learnt before its time has come."""

from __future__ import annotations

import asyncio

import pytest
from bench.virtual_time import run_virtual


def test_sleepers_wake_in_virtual_time_order_and_timeouts_fire_on_time() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        seen: list[tuple[str, float]] = []

        async def after(seconds: float, name: str) -> None:
            await asyncio.sleep(seconds)
            seen.append((name, loop.time()))

        await asyncio.gather(after(3, "a"), after(1, "b"), after(3600, "c"))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.sleep(10)
        seen.append(("timeout", loop.time()))
        return seen

    assert run_virtual(main()) == [("b", 1), ("a", 3), ("c", 3600), ("timeout", 3605)]


def test_a_result_is_seen_only_once_its_virtual_time_has_come() -> None:
    async def main() -> list[str]:
        done: list[str] = []
        observed: list[str] = []

        async def slow_call() -> None:
            await asyncio.sleep(10)
            done.append("slow")

        async def later_request() -> None:
            await asyncio.sleep(1)
            observed.append(",".join(done) or "nothing yet")
            await asyncio.sleep(20)
            observed.append(",".join(done))

        await asyncio.gather(slow_call(), later_request())
        return observed

    assert run_virtual(main()) == ["nothing yet", "slow"]
