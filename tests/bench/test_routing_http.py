"""A seconds-long smoke run of the routing benchmark over HTTP (`python -m bench.routing_http`):
a real gateway in front of the simulated fleet, played twelve times faster (figures come from
full runs, never from this test)."""

from __future__ import annotations

import asyncio
import json

from bench.routing import FLEET
from bench.routing_http import gateway_yaml, run, scaled_routing


def test_the_routers_durations_are_scaled_with_the_fleets_clock() -> None:
    scaled = scaled_routing({"latency_samples": 50, "breaker": {"cooldown_s": 12}}, 12)
    assert scaled["latency_samples"] == 50
    assert scaled["breaker"]["cooldown_s"] == 1 and scaled["breaker"]["window_s"] == 30 / 12
    assert scaled["latency_max_age_s"] == 10 and scaled["deadline_s"] == 50
    assert scaled["retry"]["backoff_max_ms"] == 2000 / 12
    assert scaled["retry"]["budget_min_per_s"] == 12
    config = json.loads(gateway_yaml(json.loads(FLEET.read_text()), "http://up", 12))
    assert config["providers"][0]["base_url"] == "http://up/relaygate/atlas/v1"
    assert config["routes"][0]["targets"] == [
        "atlas/atlas-large",
        "borealis/borealis-pro",
        "cirrus/cirrus-mini",
    ]


def test_the_gateway_routes_the_fleet_over_http_and_reports_beside_the_simulation() -> None:
    report = asyncio.run(run(seed=1, speedup=12, seconds=120))
    http, virtual = report["http"], report["virtual"]
    assert set(http) == set(virtual) == {"relaygate", "single:borealis"}
    requests = virtual["relaygate"]["requests"]
    assert requests > 150
    for row in http.values():
        assert row["requests"] == requests and row["cost_usd"] > 0
    # Healthy fleet at the start of seed 1's hour: the gateway answers nearly everything, and
    # mostly through the cheap provider, as the router does in virtual time.
    assert http["relaygate"]["error_rate"] < 0.05
    answered = report["http_answered_by"]
    assert sum(answered.values()) == round(requests * (1 - http["relaygate"]["error_rate"]))
    assert max(answered, key=answered.__getitem__) == "cirrus"
