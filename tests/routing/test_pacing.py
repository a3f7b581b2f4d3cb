"""Budget pacing: the price weight follows a paced budget's spend against its pace line."""

from __future__ import annotations

import pytest

from relaygate.config.schema import PacingSettings, RoutingConfig
from relaygate.routing.breaker import MemoryBreakers
from relaygate.routing.pacing import price_scale
from relaygate.routing.scorer import Features, score
from relaygate.routing.stats import DeploymentStats
from tests.routing.helpers import Clock, deployment

SETTINGS = PacingSettings(gain=8, horizon=0.1, max_scale=64)


def test_on_pace_the_price_weight_is_unchanged() -> None:
    assert price_scale(50.0, 100.0, 0.5, SETTINGS) == pytest.approx(1.0)
    assert price_scale(0.0, 100.0, 0.0, SETTINGS) == pytest.approx(1.0)


def test_ahead_of_pace_price_counts_more_and_behind_it_less() -> None:
    # One horizon is 10 % of the limit: $10 here. $1.25 ahead = 1/8 horizon = one doubling.
    assert price_scale(51.25, 100.0, 0.5, SETTINGS) == pytest.approx(2.0)
    assert price_scale(48.75, 100.0, 0.5, SETTINGS) == pytest.approx(0.5)
    assert price_scale(52.5, 100.0, 0.5, SETTINGS) > price_scale(51.25, 100.0, 0.5, SETTINGS)


def test_the_factor_is_bounded_both_ways() -> None:
    assert price_scale(100.0, 100.0, 0.1, SETTINGS) == pytest.approx(64.0)
    assert price_scale(0.0, 100.0, 0.9, SETTINGS) == pytest.approx(1 / 64)
    # A spent budget, or one with no limit left to pace, presses as hard as allowed.
    assert price_scale(5.0, 0.0, 0.5, SETTINGS) == pytest.approx(64.0)


def test_elapsed_share_outside_the_period_is_clamped() -> None:
    assert price_scale(100.0, 100.0, 1.7, SETTINGS) == pytest.approx(1.0)
    assert price_scale(0.0, 100.0, -0.2, SETTINGS) == pytest.approx(1.0)


def test_the_scale_flips_the_choice_between_a_fast_dear_and_a_slow_cheap_deployment() -> None:
    config = RoutingConfig()
    clock = Clock()
    stats = DeploymentStats(200, 30, clock)
    breakers = MemoryBreakers(config.breaker, stats, clock)
    fast = deployment("fast", input_price=3.0, output_price=12.0)
    cheap = deployment("cheap", input_price=0.4, output_price=1.6)
    for _ in range(20):
        stats.observe("fast/m", 0, 1.0, True)
        stats.observe("cheap/m", 0, 4.0, True)

    def first(scale: float) -> str:
        plan = score(
            "r", [fast, cheap], Features(1000, 200, 0, price_scale=scale), config, stats, breakers
        )
        return plan.candidates[0].deployment.provider_name

    assert first(1.0) == "cheap"  # 7.5x the price outweighs 4x the latency at equal weights
    assert first(0.25) == "fast"  # behind pace: the budget has room for the faster one
    assert first(4.0) == "cheap"
