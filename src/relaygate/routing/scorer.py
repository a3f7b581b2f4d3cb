"""Filter a route's deployments for one request and order the rest by score (lower wins).

Filters: context-window fit (prompt + requested output within the window, less a margin), the
request's cost cap, open circuits. Score: latency (log2 of the rolling p95 for this prompt size
relative to the fastest candidate), recent error rate, price (log2 of the expected cost relative
to the cheapest), context headroom (a bonus), and a small preference for the order written.
A deployment whose p95 breaks the route's latency SLO is used only after every other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from relaygate.config.schema import RoutingConfig
from relaygate.routing.breaker import Breakers
from relaygate.routing.catalog import Deployment
from relaygate.routing.stats import LONG_BUCKET, DeploymentStats

EXPECTED_OUTPUT_TOKENS = 256  # when the request sets no max_tokens


@dataclass(frozen=True, slots=True)
class Features:
    """What the router knows of a request before calling anyone."""

    prompt_tokens: int
    max_output_tokens: int | None
    bucket: int
    cost_cap_usd: float | None = None
    price_scale: float = 1.0  # budget pacing: above 1 ahead of pace, below 1 behind it


@dataclass(frozen=True, slots=True)
class Scored:
    """One candidate's score and its parts (for the debug header)."""

    deployment: Deployment
    score: float
    latency: float
    errors: float
    price: float
    headroom: float
    slo_broken: bool

    def describe(self) -> str:
        """`provider/model=score(lat,err,price,head)`."""
        flag = ",slo" if self.slo_broken else ""
        return (
            f"{self.deployment.key}={self.score:.3f}(lat={self.latency:.2f},"
            f"err={self.errors:.2f},price={self.price:.2f},head={self.headroom:.2f}{flag})"
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """The candidates to try, in order, and why others were left out."""

    route: str
    candidates: tuple[Scored, ...]
    skipped: dict[str, str]
    features: Features

    @property
    def deployments(self) -> list[Deployment]:
        """The candidates' deployments, in order."""
        return [c.deployment for c in self.candidates]

    def describe(self) -> str:
        """The debug header's value."""
        parts = [c.describe() for c in self.candidates]
        parts += [f"{name}=skipped({why})" for name, why in self.skipped.items()]
        return "; ".join(parts)


def expected_cost(deployment: Deployment, features: Features) -> float:
    """USD for this request at this deployment's prices, assuming the expected output size."""
    model = deployment.model
    output = features.max_output_tokens or min(EXPECTED_OUTPUT_TOKENS, model.max_output_tokens)
    return (features.prompt_tokens * model.input_price + output * model.output_price) / 1e6


def score(
    route: str,
    deployments: Sequence[Deployment],
    features: Features,
    config: RoutingConfig,
    stats: DeploymentStats,
    breakers: Breakers,
    latency_slo_ms: float | None = None,
) -> Plan:
    """Filter and order `deployments` for a request with `features`."""
    skipped: dict[str, str] = {}
    fitting: list[tuple[int, Deployment, float, float]] = []
    for index, deployment in enumerate(deployments):
        name = deployment.key
        model = deployment.model
        output = features.max_output_tokens or 0
        usable = model.context_window * (1 - config.context_margin)
        if features.prompt_tokens + output > usable:
            skipped[name] = "context"
            continue
        cost = expected_cost(deployment, features)
        if features.cost_cap_usd is not None and cost > features.cost_cap_usd:
            skipped[name] = "cost_cap"
            continue
        if breakers.cooling_for(name) > 0:
            skipped[name] = "circuit_open"
            continue
        headroom = 1 - (features.prompt_tokens + output) / model.context_window
        fitting.append((index, deployment, cost, headroom))
    if config.strategy == "ordered" or len(fitting) <= 1:
        candidates = tuple(
            Scored(d, float(i), 0.0, 0.0, 0.0, head, False) for i, d, _, head in fitting
        )
        return Plan(route, candidates, skipped, features)
    weights = config.weights
    if config.long_prompt_weights is not None and features.bucket >= LONG_BUCKET:
        weights = config.long_prompt_weights
    p95s = {}
    for _, deployment, _, _ in fitting:
        name = deployment.key
        p95 = stats.p95(name, features.bucket)
        # A deployment that has lately been slower than usual is expected to stay so for a while.
        p95s[name] = p95 * 2 ** stats.slowdown(name) if p95 else None
    known = [p for p in p95s.values() if p]
    fastest = min(known) if known else None
    cheapest = min(c for _, _, c, _ in fitting)
    scored = []
    for index, deployment, cost, headroom in fitting:
        name = deployment.key
        p95 = p95s[name]
        latency = math.log2(p95 / fastest) if p95 and fastest else 0.0
        errors, _ = stats.error_rate(name)
        price = math.log2(cost / cheapest) if cheapest > 0 else 0.0
        total = (
            weights.latency * latency
            + weights.errors * errors
            + weights.price * features.price_scale * price
            - weights.headroom * headroom
            + weights.order * index
        )
        slo_broken = latency_slo_ms is not None and p95 is not None and p95 * 1000 > latency_slo_ms
        scored.append(Scored(deployment, total, latency, errors, price, headroom, slo_broken))
    scored.sort(key=lambda s: (s.slo_broken, s.score))
    return Plan(route, tuple(scored), skipped, features)
