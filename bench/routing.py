"""The routing benchmark: Relaygate's router against simple strategies on a simulated fleet.

The fleet and workload are in `bench/routing_data/fleet.json`: three providers with different
prices, latencies that grow with prompt size, lognormal noise, rate limits (429 + Retry-After),
recurring degradation episodes (slower and error-prone for a few minutes, at a phase that depends
on the seed) and one full outage. An hour of traffic (short prompts and 8K-32K long ones) is
replayed in virtual time against:

- `single:<provider>`: one provider, the client retrying once (after Retry-After on a 429);
- `round-robin`: providers in turn, one failover to the next on an error;
- `cheapest-first`: the cheapest provider, failing over by price;
- `relaygate`: the real `relaygate.routing.router.Router` (scoring, breakers, retry budget,
  backoff) in virtual time, with the `routing:` settings named under `routers` in the fleet file
  (`relaygate`: defaults but a 50-sample latency window; `relaygate-latency-first`: latency and
  errors weighted over price; `relaygate-long-fast`: defaults for short prompts, latency first
  for long ones; `relaygate-paced`: the defaults with a paced budget of $120 per hour, as a
  tenant's budget with `pace: true` would be). The targets are checked for each of them.

Each strategy runs with the same seeds; the report gives p50/p95 latency (all and long prompts),
the error rate clients see, the total cost, and its variance across seeds, then checks the
targets against the best single provider (the one with the lowest long-prompt p95).

    .venv/bin/python -m bench.routing [--seeds 200] [--first-seed 1] [--jobs N] [--no-chart]
    .venv/bin/python -m bench.routing --pace 70,90,110   # also `paced-<usd>` profiles: a sweep
    .venv/bin/python -m bench.routing --classifier     # accuracy of the complexity classifier
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import statistics
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.charts import MISSING, pyplot
from bench.report import save_results
from bench.virtual_time import run_virtual
from relaygate.config.schema import ModelConfig, ProviderConfig, RoutingConfig
from relaygate.errors import UpstreamError
from relaygate.routing.catalog import Deployment
from relaygate.routing.pacing import price_scale
from relaygate.routing.router import Router
from relaygate.routing.scorer import Features
from relaygate.routing.stats import bucket_of

ROOT = Path(__file__).resolve().parent.parent
FLEET = ROOT / "bench" / "routing_data" / "fleet.json"
CHART = ROOT / "docs" / "routing-benchmark.png"
LONG = 8000
VIABLE_ERROR_RATE = 0.05


@dataclass(frozen=True, slots=True)
class Request:
    at: float
    prompt: int
    output: int

    @property
    def long(self) -> bool:
        return self.prompt >= LONG


@dataclass
class Provider:
    """One simulated provider; its health depends on the time and the seed."""

    spec: dict[str, Any]
    rng: random.Random
    phase: float
    recent: deque[float] = field(default_factory=deque)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def _episode(self, t: float) -> bool:
        ep = self.spec["episodes"]
        return bool((t + self.phase) % ep["every_s"] < ep["length_s"])

    def price(self, request: Request) -> float:
        s = self.spec
        return float(request.prompt * s["input_price"] + request.output * s["output_price"]) / 1e6

    def call(self, t: float, request: Request) -> tuple[float, str | None, float | None]:
        """(seconds, error kind or None, retry-after) of one call made at time `t`."""
        s = self.spec
        while self.recent and self.recent[0] < t - 60:
            self.recent.popleft()
        if len(self.recent) >= s["rpm"]:
            return 0.05, "rate_limited", float(s["retry_after_s"])
        self.recent.append(t)
        outage = s.get("outage")
        if outage and outage[0] <= t < outage[1]:
            return 0.02, "unavailable", None
        episode = self._episode(t)
        error_rate = s["episodes"]["error_rate"] if episode else s["error_rate"]
        base = (
            s["ttft_s"]
            + request.prompt / 1000 * s["prefill_s_per_1k"]
            + request.output * s["decode_s_per_token"]
        )
        seconds = base * math.exp(self.rng.gauss(0, s["sigma"]))
        if episode:
            seconds *= s["episodes"]["latency_factor"]
        if self.rng.random() < error_rate:
            return seconds * self.rng.uniform(0.1, 1.0), "server_error", None
        return seconds, None, None


@dataclass
class Outcome:
    latency: float
    ok: bool
    cost: float
    long: bool


def workload(fleet: dict[str, Any], seconds: float, rng: random.Random) -> list[Request]:
    """Poisson arrivals; short and long prompts; output sizes."""
    out: list[Request] = []
    t = 0.0
    while True:
        t += rng.expovariate(fleet["requests_per_s"])
        if t >= seconds:
            return out
        long = rng.random() < fleet["long_share"]
        low, high = fleet["long_prompt_tokens" if long else "short_prompt_tokens"]
        out.append(
            Request(t, int(rng.uniform(low, high)), int(rng.uniform(*fleet["output_tokens"])))
        )


def fleet_providers(fleet: dict[str, Any], seed: int) -> list[Provider]:
    """A fresh copy of the fleet for one strategy: episode phases and noise set by `seed`."""
    phases = random.Random(seed * 7919)
    return [
        Provider(
            spec, random.Random(seed * 104729 + i), phases.uniform(0, spec["episodes"]["every_s"])
        )
        for i, spec in enumerate(fleet["providers"])
    ]


def run_fixed(
    order_for: Callable[[int, Request], list[Provider]],
    requests: list[Request],
    attempts: int,
) -> list[Outcome]:
    """A simple client: try the providers `order_for` gives, in order, `attempts` calls in all;
    the same provider again waits for Retry-After (or 1 s)."""
    outcomes = []
    for index, request in enumerate(requests):
        order = order_for(index, request)
        elapsed, ok, cost = 0.0, False, 0.0
        for attempt in range(attempts):
            provider = order[attempt % len(order)]
            seconds, error, retry_after = provider.call(request.at + elapsed, request)
            elapsed += seconds
            if error is None:
                ok, cost = True, provider.price(request)
                break
            if attempt + 1 < attempts and order[(attempt + 1) % len(order)] is provider:
                elapsed += retry_after or 1.0
        outcomes.append(Outcome(elapsed, ok, cost, request.long))
    return outcomes


def _deployment(provider: Provider) -> Deployment:
    s = provider.spec
    model = ModelConfig(
        name=s["model"],
        context_window=s["context_window"],
        max_output_tokens=4096,
        input_price=s["input_price"],
        output_price=s["output_price"],
    )
    config = ProviderConfig(name=s["name"], type="simulator", models=[model])

    class _Named:  # the router needs only the provider's configured name
        def __init__(self) -> None:
            self.config = config

    return Deployment(_Named(), model)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Profile:
    """One router under test: its `routing:` settings and, optionally, a paced budget in USD
    per simulated hour (`paced_usd_per_hour` in the fleet file), spent as a tenant's paced
    budget would be (docs/routing.md, "Budget pacing")."""

    config: RoutingConfig
    paced_usd_per_hour: float | None = None


def run_router(
    providers: list[Provider], requests: list[Request], seed: int, profile: Profile, period_s: float
) -> list[Outcome]:
    """The real router on the simulated fleet, on a virtual clock (bench/virtual_time.py):
    requests overlap as they would in real time, and the router learns how a call went only
    when the call ends, as it does in the gateway."""
    return run_virtual(_route_all(providers, requests, seed, profile, period_s))


async def _route_all(
    providers: list[Provider], requests: list[Request], seed: int, profile: Profile, period_s: float
) -> list[Outcome]:
    config = profile.config
    loop = asyncio.get_running_loop()
    router = Router(config, clock=loop.time, sleep=asyncio.sleep, rng=random.Random(seed))
    deployments = [_deployment(p) for p in providers]
    by_name = {p.name: p for p in providers}
    spent = 0.0

    async def one(request: Request) -> Outcome:
        nonlocal spent
        await asyncio.sleep(request.at - loop.time())

        async def call(deployment: Deployment) -> float:
            provider = by_name[deployment.provider_name]
            seconds, error, retry_after = provider.call(loop.time(), request)
            await asyncio.sleep(seconds)
            if error == "rate_limited":
                raise UpstreamError(429, "rate limited", retryable=True, retry_after=retry_after)
            if error is not None:
                raise UpstreamError(502, error, retryable=True)
            return provider.price(request)

        scale = 1.0
        if profile.paced_usd_per_hour is not None:
            budget = profile.paced_usd_per_hour * period_s / 3600
            scale = price_scale(spent, budget, request.at / period_s, config.pacing)
        features = Features(
            request.prompt, request.output, bucket_of(request.prompt), price_scale=scale
        )
        try:
            plan = router.plan("fleet", deployments, features)
            cost, _ = await router.run(plan, call, request.at + config.deadline_s)
        except UpstreamError:
            return Outcome(loop.time() - request.at, False, 0.0, request.long)
        spent += cost
        return Outcome(loop.time() - request.at, True, cost, request.long)

    return list(await asyncio.gather(*(one(r) for r in requests)))


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def summarize(outcomes: list[Outcome]) -> dict[str, float]:
    ok = [o.latency for o in outcomes if o.ok]
    long = [o.latency for o in outcomes if o.ok and o.long]
    return {
        "requests": len(outcomes),
        "p50_s": _p(ok, 0.5),
        "p95_s": _p(ok, 0.95),
        "long_p50_s": _p(long, 0.5),
        "long_p95_s": _p(long, 0.95),
        "error_rate": sum(not o.ok for o in outcomes) / len(outcomes),
        "cost_usd": sum(o.cost for o in outcomes),
    }


def router_profiles(fleet: dict[str, Any]) -> dict[str, Profile]:
    """The router profiles under `routers` in the fleet file, by name."""
    profiles = {}
    for name, settings in fleet.get("routers", {"relaygate": {}}).items():
        routing = {k: v for k, v in settings.items() if k != "paced_usd_per_hour"}
        budget = settings.get("paced_usd_per_hour")
        profiles[name] = Profile(RoutingConfig.model_validate(routing), budget)
    return profiles


def always(order: list[Provider]) -> Callable[[int, Request], list[Provider]]:
    """The same providers in the same order for every request."""
    return lambda _index, _request: order


def _in_turn(providers: list[Provider]) -> Callable[[int, Request], list[Provider]]:
    """Round-robin: request i starts at provider i mod n, then the next ones in turn."""
    n = len(providers)
    return lambda index, _request: [providers[(index + k) % n] for k in range(n)]


def run_seed(fleet: dict[str, Any], seconds: float, seed: int) -> dict[str, dict[str, float]]:
    """Every strategy on one seed's workload and fleet: strategy name -> summary."""
    attempts = 1 + int(fleet["client_retries"])
    found: dict[str, dict[str, float]] = {}
    requests = workload(fleet, seconds, random.Random(seed))
    for name in [p["name"] for p in fleet["providers"]]:
        only = next(p for p in fleet_providers(fleet, seed) if p.name == name)
        found[f"single:{name}"] = summarize(run_fixed(always([only]), requests, attempts))
    rotation = fleet_providers(fleet, seed)
    found["round-robin"] = summarize(run_fixed(_in_turn(rotation), requests, attempts))
    cheapest = sorted(fleet_providers(fleet, seed), key=lambda p: p.spec["input_price"])
    found["cheapest-first"] = summarize(run_fixed(always(cheapest), requests, attempts))
    for name, profile in router_profiles(fleet).items():
        outcome = run_router(fleet_providers(fleet, seed), requests, seed, profile, seconds)
        found[name] = summarize(outcome)
    return found


def quiet_routing_logs() -> None:
    logging.getLogger("relaygate.routing").setLevel(logging.ERROR)  # circuits open by design


def run_all(fleet: dict[str, Any], seeds: range, seconds: float, jobs: int = 1) -> dict[str, Any]:
    """Every strategy on every seed (in `jobs` processes), the table and the targets."""
    per_strategy: dict[str, list[dict[str, float]]] = {}
    with ProcessPoolExecutor(jobs, initializer=quiet_routing_logs) as pool:
        for found in pool.map(partial(run_seed, fleet, seconds), seeds):
            for name, summary in found.items():
                per_strategy.setdefault(name, []).append(summary)
    table: dict[str, dict[str, float]] = {}
    for name, runs in per_strategy.items():
        row = {key: statistics.fmean(r[key] for r in runs) for key in runs[0]}
        costs = [r["cost_usd"] for r in runs]
        row["cost_variance"] = statistics.pvariance(costs)
        row["cost_stdev_usd"] = statistics.pstdev(costs)
        table[name] = row
    # The baseline is the single provider one could pin production to: among those whose clients
    # see fewer than 5% errors, the one with the lowest long-prompt p95.
    singles = {k: v for k, v in table.items() if k.startswith("single:")}
    viable = {k: v for k, v in singles.items() if v["error_rate"] < VIABLE_ERROR_RATE} or singles
    best = min(viable, key=lambda k: viable[k]["long_p95_s"])
    targets = {name: _targets(table[name], table[best], best) for name in router_profiles(fleet)}
    return {
        "seeds": [seeds.start, seeds.stop - 1],
        "seconds": seconds,
        "table": table,
        "targets": targets,
    }


def _targets(ours: dict[str, float], base: dict[str, float], best: str) -> dict[str, Any]:
    """One router's figures against the best single provider's, and whether all targets hold."""
    found: dict[str, Any] = {
        "best_single": best,
        "long_p95_reduction": 1 - ours["long_p95_s"] / base["long_p95_s"],
        "error_reduction": 1 - ours["error_rate"] / base["error_rate"] if base["error_rate"] else 0,
        "cost_variance_reduction": (
            1 - ours["cost_variance"] / base["cost_variance"] if base["cost_variance"] else 0.0
        ),
        "cost_ratio": ours["cost_usd"] / base["cost_usd"],
    }
    found["met"] = (
        found["long_p95_reduction"] >= 0.32
        and found["error_reduction"] >= 0.47
        and found["cost_variance_reduction"] >= 0.18
        and found["cost_ratio"] <= 1.0
    )
    return found


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| strategy | p50 s | p95 s | long p50 s | long p95 s | errors | cost USD | cost stdev |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["table"].items():
        lines.append(
            f"| {name} | {r['p50_s']:.2f} | {r['p95_s']:.2f} | {r['long_p50_s']:.2f} |"
            f" {r['long_p95_s']:.2f} | {r['error_rate'] * 100:.2f}% | {r['cost_usd']:.2f} |"
            f" {r['cost_stdev_usd']:.3f} |"
        )
    lines.append("")
    for name, t in report["targets"].items():
        lines.append(
            f"{name} versus the best single provider ({t['best_single']}): long-prompt p95"
            f" {t['long_p95_reduction'] * -100:+.0f}% (target -32%), client-visible errors"
            f" {t['error_reduction'] * -100:+.0f}% (target -47%), cost variance"
            f" {t['cost_variance_reduction'] * -100:+.0f}% (target -18%), total cost"
            f" x{t['cost_ratio']:.2f} (target <= 1). Targets {'met' if t['met'] else 'NOT met'}."
        )
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> str:
    plt = pyplot()
    if plt is None:
        return MISSING
    table = report["table"]
    names = list(table)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    for ax, key, label in (
        (axes[0], "long_p95_s", "long-prompt p95 latency, s"),
        (axes[1], "error_rate", "client-visible error rate"),
        (axes[2], "cost_usd", "total cost, USD"),
        (axes[3], "cost_stdev_usd", "cost stdev across seeds, USD"),
    ):
        colors = ["tab:green" if n.startswith("relaygate") else "tab:gray" for n in names]
        ax.bar(range(len(names)), [table[n][key] for n in names], color=colors)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(label)
    fig.suptitle(
        f"Routing on a simulated fleet (seeds {report['seeds'][0]}-{report['seeds'][1]},"
        f" {report['seconds']:.0f} s each)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return f"chart written to {path.relative_to(ROOT)}"


def classifier_accuracy() -> str:
    from importlib import resources

    from relaygate.routing.classifier import classify

    text = (resources.files("relaygate.routing") / "data" / "complexity.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    started = time.perf_counter()
    right = sum(classify([{"role": "user", "content": r["prompt"]}])[0] == r["label"] for r in rows)
    per_call = (time.perf_counter() - started) / len(rows) * 1e6
    return (
        f"complexity classifier: {right}/{len(rows)} labelled prompts right"
        f" ({right / len(rows):.1%}), {per_call:.0f} µs per prompt"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="how many seeds (default 200)")
    parser.add_argument("--first-seed", type=int, default=1, help="the first seed (default 1)")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)"
    )
    parser.add_argument("--seconds", type=float, help="simulated time (default: the fleet file's)")
    parser.add_argument(
        "--fleet", type=Path, default=FLEET, help="fleet file (default: the one in the repo)"
    )
    parser.add_argument(
        "--pace",
        help="comma-separated USD per hour: add a `paced-<usd>` profile (defaults, 50 samples,"
        " a paced budget of that size) for each",
    )
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--classifier", action="store_true", help="only the classifier's accuracy")
    args = parser.parse_args(argv)
    if args.classifier:
        print(classifier_accuracy())
        return 0
    fleet = json.loads(args.fleet.read_text())
    for usd in (float(v) for v in args.pace.split(",")) if args.pace else ():
        fleet["routers"][f"paced-{usd:g}"] = {"latency_samples": 50, "paced_usd_per_hour": usd}
    started = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    report = run_all(fleet, seeds, args.seconds or fleet["seconds"], args.jobs)
    print(markdown(report))
    print(classifier_accuracy())
    print(f"({time.perf_counter() - started:.1f} s)")
    save_results("routing", report)
    if not args.no_chart:
        print(chart(report, CHART))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
