"""A seconds-long smoke run of the A/B latency tool (`python -m bench.ab`): both gateways, the
committed revision and the working tree, start (twice, fresh processes) and answer every request
(figures come from full runs, never from this test)."""

from __future__ import annotations

import argparse

from bench.ab import QUANTILES, TTFT_QUANTILES, run


def _args(**overrides: object) -> argparse.Namespace:
    settings: dict[str, object] = {
        "baseline": "HEAD",
        "rate": 50.0,
        "rounds": 1,
        "pairs": 2,
        "seconds": 1.0,
        "warmup_s": 0.5,
        "stream": False,
        "ttft": False,
        "streams": 3,
    }
    settings.update(overrides)
    return argparse.Namespace(**settings)


def test_ab_runs_the_baseline_and_the_working_tree_side_by_side() -> None:
    report = run(_args())
    assert report["errors"] == {"direct": 0, "A": 0, "B": 0}
    for name in ("added_A_baseline", "added_B_working_tree"):
        for quantile in QUANTILES:
            assert len(report[name][quantile]["rounds"]) == 2


def test_ab_ttft_times_the_first_token_of_paced_streams() -> None:
    report = run(_args(ttft=True, pairs=1))
    assert report["errors"] == {"direct": 0, "A": 0, "B": 0}
    assert set(report["added_B_working_tree"]) == set(TTFT_QUANTILES)
    # The paced stub sends its first chunk after 10 ms: every target's first token comes later.
    assert all(p50 >= 10 for p50 in report["direct_ttft_p50_ms"])
