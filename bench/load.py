"""Load generators: wrk (closed loop, saturation), an open-loop constant-rate client, and a
sequential streaming client measuring time to first token and inter-chunk gaps."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d," ..
    "\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Endpoint:
    """Where to send chat completions, and as whom."""

    url: str
    key: str
    model: str


def body(model: str, *, stream: bool) -> str:
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 32,
    }
    if stream:
        payload["stream"] = True
    return json.dumps(payload)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    endpoint: Endpoint,
    *,
    stream: bool,
    seconds: float,
    connections: int,
    threads: int,
    workdir: Path,
) -> dict[str, Any]:
    """Closed-loop wrk run; returns requests, req/s, errors and wrk's latency percentiles."""
    wrk = wrk_binary()
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT)
    env = dict(os.environ, BENCH_BODY=body(endpoint.model, stream=stream), BENCH_KEY=endpoint.key)
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        endpoint.url,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    line = next((x for x in out.splitlines() if x.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    raw = json.loads(line.removeprefix("BENCHJSON "))
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    duration = raw["duration_us"] / 1e6
    good = max(0, raw["requests"] - raw["status"])
    return {
        "method": f"wrk -t{threads} -c{connections} -d{round(seconds)}s (closed loop)",
        "requests": raw["requests"],
        "errors": errors,
        "duration_s": duration,
        "rps": good / duration if duration else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
    }


async def _one(
    session: aiohttp.ClientSession, endpoint: Endpoint, payload: bytes, headers: dict[str, str]
) -> tuple[float, bool]:
    started = time.perf_counter()
    try:
        async with session.post(endpoint.url, data=payload, headers=headers) as response:
            await response.read()
            ok = response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        ok = False
    return time.perf_counter() - started, ok


async def open_loop(
    endpoint: Endpoint, *, rate: float, seconds: float, stream: bool, warmup_s: float = 1.0
) -> dict[str, Any]:
    """Send requests at a constant rate, independent of responses (open loop).

    Each request's latency runs from its dispatch to the end of its response body; dispatch
    follows the schedule whatever the target's latency, so queueing at the target is counted.
    """
    payload = body(endpoint.model, stream=stream).encode()
    headers = {"Authorization": f"Bearer {endpoint.key}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=1000)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        results: list[tuple[float, bool]] = []
        max_lag = 0.0
        for phase_seconds, record in ((warmup_s, False), (seconds, True)):
            count = int(rate * phase_seconds)
            tasks: list[asyncio.Task[tuple[float, bool]]] = []
            start = time.perf_counter() + 0.01
            for index in range(count):
                due = start + index / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                elif record:
                    max_lag = max(max_lag, -wait)
                tasks.append(asyncio.create_task(_one(session, endpoint, payload, headers)))
            done = await asyncio.gather(*tasks)
            if record:
                results.extend(done)
            elapsed = time.perf_counter() - start
    latencies = [lat * 1000 for lat, ok in results if ok]
    errors = sum(1 for _, ok in results if not ok)
    return {
        "rate": rate,
        "requests": len(results),
        "errors": errors,
        "achieved_rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "max_dispatch_lag_ms": max_lag * 1000,
    }


async def stream_timing(endpoint: Endpoint, *, streams: int) -> dict[str, Any]:
    """Sequential streams: time to first content token and the gaps between content chunks."""
    payload = body(endpoint.model, stream=True).encode()
    headers = {"Authorization": f"Bearer {endpoint.key}", "Content-Type": "application/json"}
    ttfts: list[float] = []
    gaps: list[float] = []
    chunk_counts: list[int] = []
    errors = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for index in range(streams + 2):
            started = time.perf_counter()
            stamps: list[float] = []
            try:
                async with session.post(endpoint.url, data=payload, headers=headers) as response:
                    if response.status != 200:
                        errors += 1
                        await response.read()
                        continue
                    async for line in response.content:
                        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                            continue
                        event = json.loads(line[6:])
                        choices = event.get("choices") or []
                        if choices and (choices[0].get("delta") or {}).get("content"):
                            stamps.append(time.perf_counter())
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
                continue
            if index < 2 or not stamps:  # two warm-up streams
                continue
            ttfts.append((stamps[0] - started) * 1000)
            gaps.extend((b - a) * 1000 for a, b in itertools.pairwise(stamps))
            chunk_counts.append(len(stamps))
    return {
        "streams": len(ttfts),
        "errors": errors,
        "ttft_p50_ms": percentile(ttfts, 50),
        "ttft_p95_ms": percentile(ttfts, 95),
        "ttft_p99_ms": percentile(ttfts, 99),
        "gap_p50_ms": percentile(gaps, 50),
        "gap_p95_ms": percentile(gaps, 95),
        "gap_p99_ms": percentile(gaps, 99),
        "gap_under_half_interval_share": 0.0,  # filled by the caller, who knows the interval
        "gaps_ms": gaps,
        "content_chunks_mean": statistics.fmean(chunk_counts) if chunk_counts else 0.0,
    }
