"""`bench.run` merges its interleaved rounds: every quantile is the median of the rounds, and the
added latency the median of the per-round differences to direct (not a difference of medians)."""

from __future__ import annotations

import math

from bench.run import _merge_rounds


def _round(p50: float, p99: float, requests: int = 800) -> dict[str, float]:
    return {
        "rate": 100.0,
        "requests": requests,
        "errors": 0,
        "cpu_s": requests / 1000,
        "achieved_rps": 100.0,
        "p50_ms": p50,
        "p95_ms": p99,
        "p99_ms": p99,
        "max_ms": p99 * 2,
        "max_dispatch_lag_ms": 0.1,
    }


def test_added_latency_is_the_median_of_per_round_differences() -> None:
    direct = [_round(1.0, 2.0), _round(0.4, 1.0), _round(0.5, 1.2)]
    gateway = [_round(2.0, 2.1), _round(0.9, 3.0), _round(1.2, 1.5)]
    row = _merge_rounds(gateway, direct)
    assert row["rounds"] == 3
    assert row["p50_ms"] == 1.2  # median of the gateway's own p50s
    assert row["p50_ms_rounds"] == [2.0, 0.9, 1.2]
    assert math.isclose(row["added_p50_ms"], 0.7)  # +1.0, +0.5, +0.7
    # p99 per round +0.1, +2.0, +0.3 -> 0.3; the difference of the medians would be 2.1 - 1.2
    assert math.isclose(row["added_p99_ms"], 0.3)
    assert row["requests"] == 2400
    assert math.isclose(row["cpu_ms_per_request"], 1.0)


def test_direct_against_itself_adds_nothing() -> None:
    direct = [_round(1.0, 2.0), _round(0.4, 1.0)]
    row = _merge_rounds(direct, direct)
    assert row["added_p50_ms"] == 0 and row["added_p99_ms"] == 0
