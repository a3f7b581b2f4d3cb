"""A soak run: constant mixed load through one Relaygate worker, watching its memory.

Alternates 10-second open-loop segments of non-streaming and streaming requests at `--rate`
requests per second for `--minutes` minutes, samples the gateway's resident memory every few
seconds, and reports the first and last minute's average, the least-squares slope in MiB per
minute over the run after its first minute (warm-up: caches, pools), and errors.

    .venv/bin/python -m bench.soak [--minutes 10] [--rate 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.load import Endpoint, open_loop
from bench.report import save_results

SEGMENT_S = 10.0


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per minute."""
    if len(samples) < 2:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [v for _, v in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


async def soak(
    service: procs.Service, endpoint: Endpoint, minutes: float, rate: float
) -> dict[str, Any]:
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    requests = errors = 0
    stream = False
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            samples.append((time.monotonic() - started, service.rss_bytes() / 2**20))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)

    sampler = asyncio.create_task(sample())
    while time.monotonic() - started < minutes * 60:
        result = await open_loop(endpoint, rate=rate, seconds=SEGMENT_S, stream=stream, warmup_s=0)
        requests += result["requests"]
        errors += result["errors"]
        stream = not stream
    stop.set()
    await sampler
    first = [v for t, v in samples if t < 60]
    last = [v for t, v in samples if t >= samples[-1][0] - 60]
    return {
        "minutes": minutes,
        "rate": rate,
        "requests": requests,
        "errors": errors,
        "rss_first_minute_mib": round(statistics.fmean(first), 1) if first else None,
        "rss_last_minute_mib": round(statistics.fmean(last), 1) if last else None,
        "rss_max_mib": round(max(v for _, v in samples), 1),
        "slope_mib_per_min_after_warmup": round(
            slope_per_minute([(t, v) for t, v in samples if t >= 60]), 3
        ),
        "samples": [(round(t, 1), round(v, 1)) for t, v in samples],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        stub, stub_port = procs.start_stub("stub", workdir, delay_ms=5, chunks=10, interval_ms=5)
        gateway, port, key = procs.start_relaygate(workdir, stub_port, stub_port)
        try:
            endpoint = Endpoint(f"http://127.0.0.1:{port}/v1/chat/completions", key, "fake-gpt")
            report = asyncio.run(soak(gateway, endpoint, args.minutes, args.rate))
        finally:
            gateway.stop()
            stub.stop()
    summary = {k: v for k, v in report.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    save_results("soak", report)
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
