"""Circuit breakers per deployment.

A circuit opens after `consecutive_failures` failures in a row, when the error rate over the
window passes `error_rate` (with at least `min_requests`), or when the provider says how long to
wait (`Retry-After` on a 429 or 5xx), which then is the cooldown; otherwise `cooldown_s`.
After the cooldown one request is let through as a probe (half-open): success closes the circuit,
failure opens it again for twice as long (up to `max_cooldown_s`). Only attempts that say
something about the deployment are recorded (routing/outcome.py): a caller's bad request or a
tenant's unusable credential never opens a circuit, and a probe that ends that way is released
for the next request. A route with a single
deployment cools down too, so its requests fail fast instead of each paying the failed attempts.

`SharedBreakers` mirrors open circuits through Redis: a replica that opens one publishes its
deadline, and every replica polls the deadlines twice a second, so all replicas agree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from relaygate.config.schema import BreakerSettings
from relaygate.routing.stats import DeploymentStats

log = logging.getLogger("relaygate.routing")


class Breakers(Protocol):
    """Circuit state of every deployment."""

    def allow(self, deployment: str) -> bool:
        """Whether an attempt may go to `deployment` now (a half-open probe counts as allowed)."""
        ...

    def cooling_for(self, deployment: str) -> float:
        """Seconds until the circuit may let a probe through (0 when closed)."""
        ...

    def record(self, deployment: str, ok: bool, retry_after: float | None = None) -> None:
        """The outcome of an attempt that counts (a success or a provider fault)."""
        ...

    def release(self, deployment: str) -> None:
        """An attempt ended that says nothing about the deployment (a caller's or tenant's
        fault, a cancelled request): if it held the half-open probe, the probe is free again."""
        ...


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    open_until: float = 0.0
    cooldown: float = 0.0
    probing: bool = False


class MemoryBreakers:
    """Breakers of one process."""

    def __init__(
        self, settings: BreakerSettings, stats: DeploymentStats, clock: Callable[[], float]
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self.opened: list[tuple[str, float]] = []  # (deployment, open_until) not yet published

    def _circuit(self, deployment: str) -> _Circuit:
        circuit = self._circuits.get(deployment)
        if circuit is None:
            circuit = self._circuits[deployment] = _Circuit()
        return circuit

    def allow(self, deployment: str) -> bool:
        circuit = self._circuits.get(deployment)
        if circuit is None or circuit.open_until == 0.0:
            return True
        if self._clock() < circuit.open_until or circuit.probing:
            return False
        circuit.probing = True  # half-open: this request is the probe
        return True

    def cooling_for(self, deployment: str) -> float:
        circuit = self._circuits.get(deployment)
        if circuit is None or circuit.open_until == 0.0:
            return 0.0
        return max(0.0, circuit.open_until - self._clock())

    def release(self, deployment: str) -> None:
        circuit = self._circuits.get(deployment)
        if circuit is not None:
            circuit.probing = False

    def record(self, deployment: str, ok: bool, retry_after: float | None = None) -> None:
        circuit = self._circuit(deployment)
        settings = self._settings
        if ok:
            circuit.failures = 0
            if circuit.open_until:
                circuit.open_until, circuit.cooldown, circuit.probing = 0.0, 0.0, False
            return
        circuit.failures += 1
        rate, total = self._stats.error_rate(deployment)
        tripped = (
            circuit.probing
            or retry_after is not None
            or circuit.failures >= settings.consecutive_failures
            or (total >= settings.min_requests and rate > settings.error_rate)
        )
        if not tripped:
            return
        if retry_after is not None:  # the provider said how long: that is the cooldown
            cooldown = min(max(retry_after, 0.5), settings.max_cooldown_s)
        elif circuit.probing:
            cooldown = min(settings.max_cooldown_s, max(circuit.cooldown, settings.cooldown_s) * 2)
        else:
            cooldown = settings.cooldown_s
        self.open(deployment, self._clock() + cooldown, cooldown)

    def open(self, deployment: str, until: float, cooldown: float | None = None) -> None:
        """Open the circuit until `until` (also used when another replica opened it)."""
        circuit = self._circuit(deployment)
        if until <= circuit.open_until and not circuit.probing:
            return
        circuit.open_until, circuit.probing = until, False
        if cooldown is not None:
            circuit.cooldown = cooldown
            self.opened.append((deployment, until))
            log.warning("circuit of %s open for %.1f s", deployment, cooldown)


class SharedBreakers:
    """Memory breakers whose open circuits are shared through Redis (wall-clock deadlines)."""

    def __init__(
        self,
        local: MemoryBreakers,
        redis: Any,
        prefix: str,
        deployments: list[str],
        wall: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.local = local
        self._redis = redis
        self._prefix = prefix + "breaker:"
        self._deployments = deployments
        self._wall = wall
        self._monotonic = monotonic

    def allow(self, deployment: str) -> bool:
        return self.local.allow(deployment)

    def cooling_for(self, deployment: str) -> float:
        return self.local.cooling_for(deployment)

    def record(self, deployment: str, ok: bool, retry_after: float | None = None) -> None:
        self.local.record(deployment, ok, retry_after)

    def release(self, deployment: str) -> None:
        self.local.release(deployment)

    async def sync(self) -> None:
        """Publish circuits opened here; adopt circuits other replicas opened."""
        opened, self.local.opened = self.local.opened, []
        offset = self._wall() - self._monotonic()
        if opened:
            pipe = self._redis.pipeline(transaction=False)
            for deployment, until in opened:
                ttl_ms = max(1, int((until - self._monotonic()) * 1000))
                pipe.set(self._prefix + deployment, f"{until + offset:.3f}", px=ttl_ms)
            await pipe.execute()
        keys = [self._prefix + d for d in self._deployments]
        values = await self._redis.mget(keys) if keys else []
        for deployment, value in zip(self._deployments, values, strict=True):
            if value is not None:
                until = float(value) - offset
                if until > self._monotonic():
                    self.local.open(deployment, until)

    async def run(self, interval_s: float = 0.5) -> None:
        """`sync` forever (background task); Redis trouble only delays agreement."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sync()
            except Exception as exc:
                log.warning("breaker sync failed (%s)", type(exc).__name__)
