"""A seconds-long smoke run of the routing benchmark: it runs the real router and reports every
strategy (the figures come from full runs: `python -m bench.routing`)."""

from __future__ import annotations

import json
import random
from typing import Any

from bench.routing import FLEET, Profile, Provider, Request, markdown, run_all, run_router

from relaygate.config.schema import RoutingConfig


def test_the_benchmark_runs_every_strategy_on_the_fleet() -> None:
    fleet = json.loads(FLEET.read_text())
    report = run_all(fleet, seeds=range(1, 2), seconds=300)
    names = set(report["table"])
    assert {"round-robin", "cheapest-first", "relaygate"} <= names
    assert {f"single:{p['name']}" for p in fleet["providers"]} <= names
    for row in report["table"].values():
        assert row["requests"] > 400 and 0 <= row["error_rate"] <= 1
    assert set(report["targets"]) == set(fleet["routers"])
    for found in report["targets"].values():
        assert set(found) >= {"best_single", "long_p95_reduction", "met"}
    assert "| relaygate |" in markdown(report)


def test_a_paced_router_spends_close_to_its_budget_whatever_the_budget() -> None:
    """The same seed and traffic, three budgets: the unpaced router spends what its scores
    give; a paced one ends near its budget, above or below that figure."""
    fleet = json.loads(FLEET.read_text())
    fleet["routers"] = {
        "free": {"latency_samples": 50},
        "paced-low": {"latency_samples": 50, "paced_usd_per_hour": 45},
        "paced-high": {"latency_samples": 50, "paced_usd_per_hour": 100},
    }
    table = run_all(fleet, seeds=range(3, 4), seconds=1200)["table"]
    hour = 1200 / 3600
    assert (
        table["paced-low"]["cost_usd"] < table["free"]["cost_usd"] < table["paced-high"]["cost_usd"]
    )
    for name, rate in (("paced-low", 45), ("paced-high", 100)):
        assert abs(table[name]["cost_usd"] - rate * hour) < 0.1 * rate * hour, name


class _Counted(Provider):
    """A simulated provider that records when it was called."""

    calls: list[float]

    def call(self, t: float, request: Request) -> tuple[float, str | None, float | None]:
        self.calls.append(t)
        return super().call(t, request)


def _provider(name: str, price: float, seconds: float, error_rate: float) -> _Counted:
    spec: dict[str, Any] = {
        "name": name,
        "model": f"{name}-model",
        "input_price": price,
        "output_price": price * 4,
        "context_window": 128000,
        "ttft_s": seconds,
        "prefill_s_per_1k": 0.0,
        "decode_s_per_token": 0.0,
        "sigma": 0.0,
        "error_rate": error_rate,
        "rpm": 10000,
        "retry_after_s": 1,
        "episodes": {"every_s": 1000, "length_s": 0, "latency_factor": 1, "error_rate": 0},
    }
    provider = _Counted(spec, random.Random(name), 0.0)
    provider.calls = []
    return provider


def test_the_simulated_router_learns_how_a_call_went_only_when_it_ends() -> None:
    """Ten requests a second apart; every call to the cheap provider fails, but only after 10 to
    100 s. None of them can know that when it arrives, so each tries the cheap provider first
    and fails over. (A simulation that let the router see outcomes early would open the cheap
    provider's circuit after five failures and spare the later requests the wait.)"""
    cheap = _provider("cheap", 0.1, 100.0, 1.0)
    dear = _provider("dear", 10.0, 1.0, 0.0)
    requests = [Request(float(i), 500, 100) for i in range(10)]
    outcomes = run_router([cheap, dear], requests, 1, Profile(RoutingConfig()), 3600)
    assert all(o.ok for o in outcomes)
    assert cheap.calls == [r.at for r in requests]  # each tried it first, on arrival
    assert len(dear.calls) == 10
    assert min(o.latency for o in outcomes) >= 10 + 1
