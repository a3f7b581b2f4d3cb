"""A seconds-long smoke run of `python -m bench.floor`: the gateway and all three reference proxies
start and answer every request (figures come from full runs, never from this test)."""

from __future__ import annotations

import argparse

from bench.floor import PROXIES, run


def test_floor_drives_the_gateway_and_the_reference_proxies() -> None:
    args = argparse.Namespace(rate=50.0, rounds=2, seconds=1.0, warmup_s=0.5)
    report = run(args)
    assert report["errors"] == dict.fromkeys(["direct", "relaygate", *PROXIES], 0)
    for name in ("relaygate", *PROXIES):
        assert len(report["added"][name]["p50_ms"]["rounds"]) == 2
