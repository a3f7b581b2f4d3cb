"""The in-process limiter: buckets in a dict, atomic because check-and-take never awaits."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence

from relaygate.limits.base import (
    CONCURRENCY_RETRY_S,
    DEFAULT_LEASE_TTL_S,
    SECONDS_PER_MINUTE,
    Decision,
    Dimension,
    Lease,
    Subject,
)
from relaygate.limits.headers import add_refusal, rate_headers

_INF = math.inf
# How often idle buckets and expired leases are swept out (a minute refills any bucket not in debt).
SWEEP_INTERVAL_S = 60.0


class _State:
    """One subject's two buckets (sharing one timestamp) and its count of leases in flight.

    A level of +inf is a full bucket at any limit (a new subject, or a dimension not limited).
    """

    __slots__ = ("debt_until", "inflight", "req", "tok", "ts")

    def __init__(self, now: float) -> None:
        self.req = _INF
        self.tok = _INF
        self.ts = now
        self.inflight = 0
        self.debt_until = 0.0  # a bucket in debt is kept until then, though idle

    def refill(self, subject: Subject, now: float) -> None:
        """Bring both levels up to `now` under the subject's current limits."""
        elapsed = now - self.ts
        if elapsed < 0.0:
            elapsed = 0.0
        self.ts = now
        limit = subject.limit
        cap = limit.rpm
        if cap is None:
            self.req = _INF
        else:
            level = self.req + elapsed * cap / SECONDS_PER_MINUTE
            self.req = cap if level > cap else level
        cap = limit.tpm
        if cap is None:
            self.tok = _INF
        else:
            level = self.tok + elapsed * cap / SECONDS_PER_MINUTE
            self.tok = cap if level > cap else level


class MemoryLimiter:
    """Limits enforced in this process (the embedded default, and the fallback when Redis is down).

    `clock` is injectable for tests (default `time.monotonic`). An unsettled lease frees its slots
    after `lease_ttl_s`. A subject whose buckets have refilled and that holds no slot is dropped
    by a sweep once a minute, so memory stays bounded by the subjects active recently.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        lease_ttl_s: float = DEFAULT_LEASE_TTL_S,
    ) -> None:
        self._clock = clock
        self._lease_ttl_s = lease_ttl_s
        self._states: dict[str, dict[str, _State]] = {"tenant": {}, "key": {}, "user": {}}
        # Leases to settle, in deadline order (one ttl for all, so insertion order is enough).
        self._open: dict[str, tuple[float, Lease]] = {}
        self._expire_at = _INF  # no open lease expires before this
        self._sweep_at = clock() + SWEEP_INTERVAL_S
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        """How many subjects have state (for tests and metrics)."""
        return sum(len(states) for states in self._states.values())

    def _state(self, subject: Subject, now: float) -> _State:
        states = self._states[subject.scope]
        state = states.get(subject.id)
        if state is None:
            state = states[subject.id] = _State(now)
        state.refill(subject, now)
        return state

    async def acquire(self, subjects: Sequence[Subject], tokens: int) -> Decision:
        """Admit or refuse atomically (this coroutine never awaits)."""
        now = self._clock()
        if now >= self._expire_at:
            self._expire(now)
        if now >= self._sweep_at:
            self._sweep(now)
        by_scope = self._states
        found: list[_State] = []
        wait = 0.0
        denied: tuple[Subject, Dimension] | None = None
        never = False
        settles = False  # the lease has tokens to reconcile or slots to free
        for subject in subjects:
            # Find (or start) the subject's state and refill it: `_state`, inlined for speed.
            states = by_scope[subject.scope]
            state = states.get(subject.id)
            if state is None:
                state = states[subject.id] = _State(now)
            found.append(state)
            elapsed = now - state.ts
            if elapsed < 0.0:
                elapsed = 0.0
            state.ts = now
            limit = subject.limit
            cap = limit.rpm
            if cap is None:
                state.req = _INF
            else:
                level = state.req + elapsed * cap / SECONDS_PER_MINUTE
                state.req = level = cap if level > cap else level
                if level < 1.0:
                    if cap < 1:
                        if not never:
                            never, wait, denied = True, _INF, (subject, "requests")
                    elif (need := (1.0 - level) * SECONDS_PER_MINUTE / cap) > wait:
                        wait, denied = need, (subject, "requests")
            cap = limit.tpm
            if cap is None:
                state.tok = _INF
            else:
                settles = True
                level = state.tok + elapsed * cap / SECONDS_PER_MINUTE
                state.tok = level = cap if level > cap else level
                if level < tokens:
                    if tokens > cap:
                        if not never:
                            never, wait, denied = True, _INF, (subject, "tokens")
                    elif (need := (tokens - level) * SECONDS_PER_MINUTE / cap) > wait:
                        wait, denied = need, (subject, "tokens")
            cap = limit.concurrency
            if cap is not None:
                settles = True
                if state.inflight >= cap:
                    if cap < 1:
                        if not never:
                            never, wait, denied = True, _INF, (subject, "concurrency")
                    elif denied is None or wait < CONCURRENCY_RETRY_S:
                        wait, denied = CONCURRENCY_RETRY_S, (subject, "concurrency")
        req_limit: int | None = None
        tok_limit: int | None = None
        req_level = tok_level = _INF
        if denied is None:
            # Take from every bucket; levels stay >= 0 (only a settle can leave debt).
            for subject, state in zip(subjects, found, strict=False):
                limit = subject.limit
                if limit.rpm is not None:
                    state.req -= 1.0
                    if state.req < req_level:
                        req_limit, req_level = limit.rpm, state.req
                if limit.tpm is not None:
                    state.tok -= tokens
                    if state.tok < tok_level:
                        tok_limit, tok_level = limit.tpm, state.tok
                if limit.concurrency is not None:
                    state.inflight += 1
            lease = Lease(str(next(self._ids)), tuple(subjects), tokens, "memory")
            if settles:
                deadline = now + self._lease_ttl_s
                self._open[lease.id] = (deadline, lease)
                if deadline < self._expire_at:
                    self._expire_at = deadline
            headers = rate_headers(req_limit, req_level, tok_limit, tok_level)
            return Decision(True, lease, 0.0, None, False, headers)
        for subject, state in zip(subjects, found, strict=False):
            limit = subject.limit
            if limit.rpm is not None and state.req < req_level:
                req_limit, req_level = limit.rpm, state.req
            if limit.tpm is not None and state.tok < tok_level:
                tok_limit, tok_level = limit.tpm, state.tok
        headers = rate_headers(req_limit, req_level, tok_limit, tok_level)
        add_refusal(headers, wait)
        return Decision(False, None, wait, denied, never, headers)

    async def settle(self, lease: Lease, actual_tokens: int) -> None:
        """Reconcile tokens and free slots (never awaits, so a cancelled caller cannot stop it)."""
        if self._open.pop(lease.id, None) is not None:
            self._release(lease, actual_tokens - lease.tokens, self._clock())

    def _release(self, lease: Lease, delta: int, now: float) -> None:
        states = self._states
        for subject in lease.subjects:
            limit = subject.limit
            cap = limit.tpm
            if cap is not None and delta and (delta > 0 or subject.id in states[subject.scope]):
                # (a refund to a subject forgotten because it was full has nothing to add to)
                state = self._state(subject, now)
                level = state.tok - delta
                state.tok = level = cap if level > cap else level
                if level < 0.0:
                    state.debt_until = now + (cap - level) * SECONDS_PER_MINUTE / cap
            if limit.concurrency is not None:
                state_or_none = states[subject.scope].get(subject.id)
                if state_or_none is not None and state_or_none.inflight > 0:
                    state_or_none.inflight -= 1

    def _expire(self, now: float) -> None:
        """Free the slots of leases past their deadline (never settled: a bug or a lost task)."""
        open_leases = self._open
        while open_leases:
            lease_id = next(iter(open_leases))
            deadline, lease = open_leases[lease_id]
            if deadline > now:
                self._expire_at = deadline
                return
            del open_leases[lease_id]
            self._release(lease, 0, now)
        self._expire_at = _INF

    def _sweep(self, now: float) -> None:
        """Forget subjects that hold no slot and whose buckets have refilled."""
        self._sweep_at = now + SWEEP_INTERVAL_S
        full_since = now - SECONDS_PER_MINUTE  # a bucket not in debt refills within a minute
        for states in self._states.values():
            idle = [
                key
                for key, s in states.items()
                if s.inflight == 0 and s.ts <= full_since and s.debt_until <= now
            ]
            for key in idle:
                del states[key]

    async def aclose(self) -> None:
        """Nothing to release."""
