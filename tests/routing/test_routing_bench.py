"""A seconds-long smoke run of the routing benchmark: it runs the real router and reports every
strategy (the figures come from full runs: `python -m bench.routing`)."""

from __future__ import annotations

import json

from bench.routing import FLEET, markdown, run_all


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
