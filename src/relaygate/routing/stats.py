"""Rolling latency and error statistics per deployment, by prompt-size bucket.

Latencies are kept as the last `samples` observations per deployment and bucket (long prompts
behave differently from short ones), none older than `max_age_s`; p95 and median are recomputed
at most every 16 new or expired samples. The age limit matters for a deployment the router has
stopped choosing: without it, the samples of its slow spell would be its p95 until some other
deployment got worse, however long ago the spell ended (it gets no traffic to replace them).
A deployment's slowdown (each success against its bucket's median, smoothed, fading with a
half-life) reacts within a few calls where the p95 takes hundreds. Error rates count timeouts and
429s as errors over a sliding time window. Per process: every replica learns from its own
traffic.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# Upper bounds (prompt tokens) of the buckets: short, medium, long (8K-32K), huge.
BUCKETS = (1024, 8192, 32768)
_RECOMPUTE_EVERY = 16
_SLOWDOWN_ALPHA = 0.3


def bucket_of(prompt_tokens: int) -> int:
    """The index of the prompt-size bucket for `prompt_tokens`."""
    for index, bound in enumerate(BUCKETS):
        if prompt_tokens < bound:
            return index
    return len(BUCKETS)


LONG_BUCKET = bucket_of(BUCKETS[1])  # prompts of 8,192 tokens or more


@dataclass(slots=True)
class _Latencies:
    """The last samples of one deployment and bucket, as (when, seconds)."""

    samples: deque[tuple[float, float]]
    p95: float | None = None
    p50: float | None = None
    since: int = 0

    def add(self, now: float, seconds: float) -> None:
        self.samples.append((now, seconds))
        self.since += 1
        if self.p95 is None or self.since >= _RECOMPUTE_EVERY:
            self._recompute()

    def expire(self, before: float) -> None:
        """Forget samples taken before `before`."""
        samples = self.samples
        if not samples or samples[0][0] >= before:
            return
        while samples and samples[0][0] < before:
            samples.popleft()
            self.since += 1
        if not samples:
            self.p95 = self.p50 = None
            self.since = 0
        elif self.since >= _RECOMPUTE_EVERY:
            self._recompute()

    def _recompute(self) -> None:
        ordered = sorted(seconds for _, seconds in self.samples)
        self.p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
        self.p50 = ordered[len(ordered) // 2]
        self.since = 0


@dataclass(slots=True)
class _Slowdown:
    """How much slower than its own median a deployment has been lately (log2, smoothed)."""

    log2_ratio: float = 0.0
    at: float = 0.0

    def add(self, log2_ratio: float, now: float, half_life: float) -> None:
        self.log2_ratio = self.value(now, half_life)
        self.log2_ratio += _SLOWDOWN_ALPHA * (log2_ratio - self.log2_ratio)
        self.at = now

    def value(self, now: float, half_life: float) -> float:
        """Fades towards 0 while nothing is observed, so a shunned deployment gets retried."""
        return self.log2_ratio * math.pow(0.5, (now - self.at) / half_life)


@dataclass(slots=True)
class _Outcomes:
    events: deque[tuple[float, bool]] = field(default_factory=deque)
    errors: int = 0

    def add(self, now: float, ok: bool, window: float) -> None:
        self.events.append((now, ok))
        self.errors += not ok
        self.trim(now, window)

    def trim(self, now: float, window: float) -> None:
        while self.events and self.events[0][0] < now - window:
            _, ok = self.events.popleft()
            self.errors -= not ok

    def rate(self, now: float, window: float) -> tuple[float, int]:
        self.trim(now, window)
        total = len(self.events)
        return (self.errors / total if total else 0.0), total


class DeploymentStats:
    """What the router has seen of each deployment."""

    def __init__(
        self,
        samples: int,
        window_s: float,
        clock: Callable[[], float],
        slowdown_half_life_s: float = 30.0,
        max_age_s: float = math.inf,
    ) -> None:
        self._samples = samples
        self._window = window_s
        self._clock = clock
        self._half_life = slowdown_half_life_s
        self._max_age = max_age_s
        self._latency: dict[tuple[str, int], _Latencies] = {}
        self._outcomes: dict[str, _Outcomes] = {}
        self._slowdown: dict[str, _Slowdown] = {}

    def observe(self, deployment: str, bucket: int, seconds: float | None, ok: bool) -> None:
        """Record one attempt: its latency (successes only) and whether it failed."""
        now = self._clock()
        if ok and seconds is not None:
            key = (deployment, bucket)
            found = self._latency.get(key)
            if found is None:
                found = self._latency[key] = _Latencies(deque(maxlen=self._samples))
            found.expire(now - self._max_age)  # a slowdown is measured against a recent median
            if found.p50:
                slowdown = self._slowdown.get(deployment)
                if slowdown is None:
                    slowdown = self._slowdown[deployment] = _Slowdown()
                ratio = max(seconds, 1e-6) / found.p50
                slowdown.add(math.log2(ratio), now, self._half_life)
            found.add(now, seconds)
        outcomes = self._outcomes.get(deployment)
        if outcomes is None:
            outcomes = self._outcomes[deployment] = _Outcomes()
        outcomes.add(now, ok, self._window)

    def p95(self, deployment: str, bucket: int) -> float | None:
        """Rolling p95 latency in seconds for this bucket (None without a recent sample)."""
        found = self._latency.get((deployment, bucket))
        if found is None:
            return None
        found.expire(self._clock() - self._max_age)
        return found.p95

    def slowdown(self, deployment: str) -> float:
        """log2 of how much slower than its median this deployment has been lately (all sizes)."""
        found = self._slowdown.get(deployment)
        return found.value(self._clock(), self._half_life) if found is not None else 0.0

    def error_rate(self, deployment: str) -> tuple[float, int]:
        """Share of failed attempts in the window, and how many attempts it covers."""
        outcomes = self._outcomes.get(deployment)
        if outcomes is None:
            return 0.0, 0
        return outcomes.rate(self._clock(), self._window)
