"""A seconds-long smoke run of the A/B latency tool (`python -m bench.ab`): both gateways, the
committed revision and the working tree, start (twice, fresh processes) and answer every request
(figures come from full runs, never from this test)."""

from __future__ import annotations

import argparse

from bench.ab import QUANTILES, run


def test_ab_runs_the_baseline_and_the_working_tree_side_by_side() -> None:
    args = argparse.Namespace(
        baseline="HEAD", rate=50.0, rounds=1, pairs=2, seconds=1.0, warmup_s=0.5, stream=False
    )
    report = run(args)
    assert report["errors"] == {"direct": 0, "A": 0, "B": 0}
    for name in ("added_A_baseline", "added_B_working_tree"):
        for quantile in QUANTILES:
            assert len(report[name][quantile]["rounds"]) == 2
