"""Filtering and scoring of a route's deployments."""

from __future__ import annotations

from relaygate.config.schema import RoutingConfig
from relaygate.routing.breaker import MemoryBreakers
from relaygate.routing.scorer import Features, score
from relaygate.routing.stats import DeploymentStats, bucket_of
from tests.routing.helpers import Clock, deployment

CONFIG = RoutingConfig()


def _tools() -> tuple[Clock, DeploymentStats, MemoryBreakers]:
    clock = Clock()
    stats = DeploymentStats(200, 30, clock)
    return clock, stats, MemoryBreakers(CONFIG.breaker, stats, clock)


def _order(plan: object) -> list[str]:
    return [c.deployment.provider_name for c in plan.candidates]  # type: ignore[attr-defined]


def test_context_window_and_cost_cap_filter_with_reasons() -> None:
    _, stats, breakers = _tools()
    small = deployment("small", window=4096)
    big = deployment("big", window=128000, input_price=50.0)
    features = Features(4000, 500, bucket_of(4000))
    plan = score("r", [small, big], features, CONFIG, stats, breakers)
    assert _order(plan) == ["big"] and plan.skipped == {"small/m": "context"}
    capped = Features(4000, 500, bucket_of(4000), cost_cap_usd=0.01)
    plan = score("r", [small, big], capped, CONFIG, stats, breakers)
    assert plan.candidates == () and plan.skipped == {"small/m": "context", "big/m": "cost_cap"}


def test_faster_cheaper_and_healthier_deployments_win() -> None:
    _, stats, breakers = _tools()
    a, b = deployment("a"), deployment("b")
    features = Features(100, 100, 0)
    for _ in range(20):
        stats.observe("a/m", 0, 2.0, True)
        stats.observe("b/m", 0, 0.5, True)
    assert _order(score("r", [a, b], features, CONFIG, stats, breakers)) == ["b", "a"]
    for _ in range(30):
        stats.observe("b/m", 0, None, False)  # b starts failing: 60% of its recent attempts
    assert _order(score("r", [a, b], features, CONFIG, stats, breakers)) == ["a", "b"]
    cheap = deployment("cheap", input_price=0.1, output_price=0.2)
    plan = score("r", [a, cheap], features, CONFIG, stats, breakers)
    assert _order(plan)[0] == "cheap"
    assert "price=" in plan.describe() and "a/m=" in plan.describe()


def test_latency_is_tracked_per_prompt_size() -> None:
    _, stats, breakers = _tools()
    a, b = deployment("a", window=64000), deployment("b", window=64000)
    for _ in range(20):
        stats.observe("a/m", 0, 0.3, True)  # a is fast on short prompts...
        stats.observe("b/m", 0, 0.6, True)
        stats.observe("a/m", bucket_of(20000), 9.0, True)  # ...and slow on long ones
        stats.observe("b/m", bucket_of(20000), 3.0, True)
    assert _order(score("r", [a, b], Features(200, 100, 0), CONFIG, stats, breakers))[0] == "a"
    long = Features(20000, 100, bucket_of(20000))
    assert _order(score("r", [a, b], long, CONFIG, stats, breakers))[0] == "b"


def test_a_broken_latency_slo_goes_last_and_open_circuits_are_skipped() -> None:
    _, stats, breakers = _tools()
    fast_pricey = deployment("fast", input_price=10.0, output_price=30.0)
    slow_cheap = deployment("slow", input_price=0.1, output_price=0.2)
    for _ in range(20):
        stats.observe("fast/m", 0, 0.2, True)
        stats.observe("slow/m", 0, 4.0, True)
    features = Features(100, 100, 0)
    plan = score("r", [fast_pricey, slow_cheap], features, CONFIG, stats, breakers, 1000)
    assert _order(plan) == ["fast", "slow"] and plan.candidates[1].slo_broken
    breakers.record("fast/m", False, retry_after=30)
    plan = score("r", [fast_pricey, slow_cheap], features, CONFIG, stats, breakers, 1000)
    assert _order(plan) == ["slow"] and plan.skipped == {"fast/m": "circuit_open"}


def test_a_deployment_that_slows_down_loses_its_lead_within_a_few_requests() -> None:
    clock, stats, breakers = _tools()
    a, b = deployment("a", window=64000), deployment("b", window=64000)
    for _ in range(40):
        stats.observe("a/m", 0, 0.5, True)
        stats.observe("b/m", 0, 0.6, True)
        stats.observe("a/m", bucket_of(20000), 5.0, True)
        stats.observe("b/m", bucket_of(20000), 6.0, True)
    short, long = Features(100, 100, 0), Features(20000, 100, bucket_of(20000))
    assert _order(score("r", [a, b], short, CONFIG, stats, breakers))[0] == "a"
    for _ in range(4):  # a becomes four times slower on short prompts: its p95 has not moved yet
        clock.now += 1
        stats.observe("a/m", 0, 2.0, True)
    assert stats.p95("a/m", 0) == 0.5
    assert _order(score("r", [a, b], short, CONFIG, stats, breakers))[0] == "b"
    # The slowdown is the deployment's, so long prompts avoid it too.
    assert _order(score("r", [a, b], long, CONFIG, stats, breakers))[0] == "b"
    clock.now += 5 * CONFIG.slowdown_half_life_s  # nothing new observed: a gets another chance
    assert _order(score("r", [a, b], short, CONFIG, stats, breakers))[0] == "a"


def test_long_prompts_can_be_weighted_differently() -> None:
    _, stats, breakers = _tools()
    fast = deployment("fast", window=64000, input_price=3.0, output_price=12.0)
    cheap = deployment("cheap", window=64000, input_price=0.4, output_price=1.6)
    for size in (200, 20000):
        for _ in range(20):
            stats.observe("fast/m", bucket_of(size), 0.5 + size / 10000, True)
            stats.observe("cheap/m", bucket_of(size), 0.6 + size / 5000, True)
    short, long = Features(200, 100, 0), Features(20000, 100, bucket_of(20000))
    assert _order(score("r", [fast, cheap], long, CONFIG, stats, breakers))[0] == "cheap"
    tuned = RoutingConfig.model_validate({"long_prompt_weights": {"latency": 4, "price": 0.25}})
    assert _order(score("r", [fast, cheap], long, tuned, stats, breakers))[0] == "fast"
    assert _order(score("r", [fast, cheap], short, tuned, stats, breakers))[0] == "cheap"


def test_a_shunned_deployment_is_judged_afresh_once_its_slow_spell_has_aged_out() -> None:
    clock = Clock()
    stats = DeploymentStats(200, 30, clock, max_age_s=CONFIG.latency_max_age_s)
    breakers = MemoryBreakers(CONFIG.breaker, stats, clock)
    a, b = deployment("a"), deployment("b")
    short = Features(100, 100, 0)
    for _ in range(20):  # a has a slow spell (8 s) while b answers in 1 s
        clock.now += 1
        stats.observe("a/m", 0, 8.0, True)
        stats.observe("b/m", 0, 1.0, True)
    for _ in range(int(CONFIG.latency_max_age_s) // 10 - 1):  # only b gets traffic now
        clock.now += 10
        assert _order(score("r", [a, b], short, CONFIG, stats, breakers))[0] == "b"
        stats.observe("b/m", 0, 1.0, True)
    assert stats.p95("a/m", 0) == 8.0  # the spell still counts...
    clock.now += 30
    assert stats.p95("a/m", 0) is None  # ...until its samples are older than the limit
    assert _order(score("r", [a, b], short, CONFIG, stats, breakers))[0] == "a"
    assert stats.p95("b/m", 0) == 1.0  # b's recent samples stay


def test_old_samples_leave_the_p95_and_recent_ones_stay() -> None:
    clock = Clock()
    stats = DeploymentStats(200, 30, clock, max_age_s=60)
    for _ in range(40):  # slow samples, then fast ones 30 s later
        stats.observe("a/m", 0, 5.0, True)
    clock.now += 30
    for _ in range(40):
        stats.observe("a/m", 0, 0.5, True)
    assert stats.p95("a/m", 0) == 5.0
    clock.now += 31  # the slow ones are 61 s old, the fast ones 31 s
    assert stats.p95("a/m", 0) == 0.5


def test_a_deployment_back_after_a_long_absence_is_not_measured_against_its_old_median() -> None:
    clock = Clock()
    stats = DeploymentStats(200, 30, clock, max_age_s=60)
    for _ in range(40):  # a slow spell: median 8 s
        stats.observe("a/m", 0, 8.0, True)
    clock.now += 300  # then nothing for five minutes; now it answers in 2 s
    stats.observe("a/m", 0, 2.0, True)
    assert stats.slowdown("a/m") == 0.0  # not "4x faster than usual": there is no usual yet
    assert stats.p95("a/m", 0) == 2.0
