"""What only the in-process limiter promises: atomic without awaiting, and bounded memory."""

from __future__ import annotations

from relaygate.limits import Limit, MemoryLimiter, Subject
from tests.limits.conftest import Clock


async def test_check_and_take_completes_without_yielding_to_the_event_loop() -> None:
    limiter = MemoryLimiter()
    coroutine = limiter.acquire([Subject("key", "k1", Limit(rpm=1, tpm=10, concurrency=1))], 5)
    try:
        coroutine.send(None)
    except StopIteration as done:
        assert done.value.allowed
    else:
        coroutine.close()
        raise AssertionError("acquire awaited: another request could interleave")


async def test_idle_subjects_are_forgotten_but_not_those_still_limited() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock=clock)
    for i in range(100):
        assert (await limiter.acquire([Subject("user", f"acme/u{i}", Limit(rpm=5))], 0)).allowed
    busy = Subject("key", "busy", Limit(concurrency=1))
    held = await limiter.acquire([busy], 0)
    indebted = Subject("key", "debt", Limit(tpm=600))
    spent = await limiter.acquire([indebted], 600)
    assert held.lease is not None and spent.lease is not None
    await limiter.settle(spent.lease, 1200)  # level -600: full again only after 120 s
    assert len(limiter) == 102
    clock.now += 61
    await limiter.acquire([], 0)  # requests keep coming; the sweep runs among them
    assert len(limiter) == 2  # the slot holder, and the subject still in debt
    assert not (await limiter.acquire([busy], 0)).allowed
    assert not (await limiter.acquire([indebted], 100)).allowed  # level 10 after 61 s
    clock.now += 61
    await limiter.settle(held.lease, 0)
    await limiter.acquire([], 0)
    assert len(limiter) == 0


async def test_a_refill_after_being_forgotten_starts_full() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock=clock)
    key = Subject("key", "k1", Limit(rpm=3))
    for _ in range(3):
        assert (await limiter.acquire([key], 0)).allowed
    clock.now += 120
    await limiter.acquire([], 0)
    assert len(limiter) == 0
    assert [(await limiter.acquire([key], 0)).allowed for _ in range(4)] == [True] * 3 + [False]
