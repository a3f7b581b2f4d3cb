"""The Redis limiter: exact across replicas, one atomic Lua script per acquire and per settle."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis

from relaygate.limits.base import DEFAULT_LEASE_TTL_S, Decision, Dimension, Lease, Subject
from relaygate.limits.headers import add_refusal, rate_headers
from relaygate.limits.lua import ACQUIRE, SETTLE

log = logging.getLogger("relaygate.limits")

_DIMENSIONS: tuple[Dimension, ...] = ("requests", "tokens", "concurrency")


def _needs_settling(subjects: Sequence[Subject]) -> bool:
    return any(s.limit.tpm is not None or s.limit.concurrency is not None for s in subjects)


def _limit_arg(value: int | None) -> int | str:
    return "" if value is None else value


class RedisLimiter:
    """Limits shared by every replica through Redis, on Redis's clock.

    A request cancelled while its acquire is in flight gives back what the script took (the
    request counts, its tokens and slots do not); settle completes even if its caller is cancelled.
    The client belongs to the caller: `aclose` waits for pending settles but does not close it.
    """

    def __init__(
        self, client: redis.Redis, prefix: str, lease_ttl_s: float = DEFAULT_LEASE_TTL_S
    ) -> None:
        self._acquire = client.register_script(ACQUIRE)
        self._settle = client.register_script(SETTLE)
        self._prefix = f"{prefix}rl:"
        self._ttl_ms = max(1, math.ceil(lease_ttl_s * 1000))
        self._tasks: set[asyncio.Future[Any]] = set()

    def _base(self, subject: Subject) -> str:
        return f"{self._prefix}{subject.scope}:{subject.id}:"

    async def acquire(self, subjects: Sequence[Subject], tokens: int) -> Decision:
        """Check and take across all subjects in one script."""
        lease = Lease(uuid.uuid4().hex, tuple(subjects), tokens, "redis")
        if not subjects:
            return Decision(True, lease, 0.0, None, False, {})
        settles = _needs_settling(subjects)
        keys = [f"{self._prefix}lease:{lease.id}"]
        args: list[int | str] = [tokens, lease.id, self._ttl_ms, "1" if settles else "0"]
        for subject in subjects:
            base = self._base(subject)
            keys += (base + "requests", base + "tokens", base + "concurrency")
            limit = subject.limit
            args += (_limit_arg(limit.rpm), _limit_arg(limit.tpm), _limit_arg(limit.concurrency))
        call = asyncio.ensure_future(self._acquire(keys=keys, args=args))
        try:
            reply = await asyncio.shield(call)
        except asyncio.CancelledError:
            if settles:
                self._track(call)
                call.add_done_callback(lambda done: self._undo(done, lease))
            raise
        return self._decision(subjects, lease, reply)

    def _decision(self, subjects: Sequence[Subject], lease: Lease, reply: list[Any]) -> Decision:
        allowed = int(reply[0]) == 1
        req_limit: int | None = None
        tok_limit: int | None = None
        req_level = tok_level = math.inf
        for i, subject in enumerate(subjects):
            raw_req, raw_tok = reply[5 + 2 * i], reply[6 + 2 * i]
            if raw_req:
                level = float(raw_req)
                if level < req_level:
                    req_limit, req_level = subject.limit.rpm, level
            if raw_tok:
                level = float(raw_tok)
                if level < tok_level:
                    tok_limit, tok_level = subject.limit.tpm, level
        headers = rate_headers(req_limit, req_level, tok_limit, tok_level)
        if allowed:
            return Decision(True, lease, 0.0, None, False, headers)
        never = int(reply[4]) == 1
        wait = math.inf if never else float(reply[3])
        add_refusal(headers, wait)
        denied = (subjects[int(reply[1]) - 1], _DIMENSIONS[int(reply[2]) - 1])
        return Decision(False, None, wait, denied, never, headers)

    def _undo(self, done: asyncio.Future[Any], lease: Lease) -> None:
        """After a cancelled acquire: give back what the script took, if it admitted."""
        if done.cancelled() or done.exception() is not None or int(done.result()[0]) != 1:
            return
        self._track(asyncio.ensure_future(self._run_settle(lease, 0)))

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Work left running by a cancelled (or timed-out) caller; during an outage this is
            # expected, and the fallback wrapper already warns once per outage.
            error = type(task.exception()).__name__
            log.debug("rate-limit call left running after a cancellation failed: %s", error)

    async def settle(self, lease: Lease, actual_tokens: int) -> None:
        """Reconcile tokens and free slots in one script; idempotent through the lease marker."""
        if not _needs_settling(lease.subjects):
            return
        call = asyncio.ensure_future(self._run_settle(lease, actual_tokens))
        try:
            await asyncio.shield(call)
        except asyncio.CancelledError:
            self._track(call)  # finishes on its own; failures are logged
            raise

    async def _run_settle(self, lease: Lease, actual_tokens: int) -> None:
        keys = [f"{self._prefix}lease:{lease.id}"]
        args: list[int | str] = [actual_tokens - lease.tokens, lease.id]
        for subject in lease.subjects:
            base = self._base(subject)
            keys += (base + "tokens", base + "concurrency")
            args.append(_limit_arg(subject.limit.tpm))
        await self._settle(keys=keys, args=args)

    async def aclose(self) -> None:
        """Wait for settles still running; the Redis client is closed by its owner."""
        while self._tasks:  # (a finished acquire may start a give-back)
            await asyncio.gather(*self._tasks, return_exceptions=True)
