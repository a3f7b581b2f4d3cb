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
