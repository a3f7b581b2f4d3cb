"""The routing benchmark through the whole gateway over HTTP: a shorter run than `bench.routing`.

`bench.routing` runs the router in virtual time, hundreds of seeds in minutes. This tool checks
that the gateway as deployed routes the same way: a real Relaygate process, configured with the
simulated fleet's three providers (`bench/routing_data/fleet.json`, prices and context windows as
there) behind one route, in front of an HTTP server that plays the fleet (latency by prompt size,
noise, errors, 429 + Retry-After, degradation episodes, the outage) in real time compressed by
`--speedup` (12: the fleet's hour in five minutes). Every routing setting in seconds (breaker
window and cooldowns, sample age, slowdown half-life, backoff, deadline, attempt timeout) and
the providers' Retry-After are divided by the same factor, and the retry budget's per-second
floor multiplied by it, so the run is the hour of `bench.routing` played faster. Latencies
are reported in fleet seconds (measured x speedup).

Strategies, each against its own copy of the fleet (rate limits and episodes are per copy):
`single:<best>` (the best single provider of `bench.routing`, called directly, the client
retrying once, as there) and `relaygate` (the gateway's route over the three, with the fleet
file's `relaygate` settings). Budget pacing is not run here: budgets are per calendar day or
month, which cannot be compressed; `bench.routing` runs it (`relaygate-paced`). One seed per run,
so there is no cost variance: the point is that the figures agree with `bench.routing`'s for the
same seed, which this tool prints beside them.

    .venv/bin/python -m bench.routing_http [--seed 1] [--speedup 12] [--seconds 3600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from bench.procs import free_port, start_relaygate_with
from bench.report import save_results
from bench.routing import (
    FLEET,
    Outcome,
    Provider,
    Request,
    always,
    fleet_providers,
    quiet_routing_logs,
    router_profiles,
    run_fixed,
    run_router,
    summarize,
    workload,
)
from bench.stub import completion_body
from relaygate.config.schema import RoutingConfig

BEST_SINGLE = "borealis"  # the best single provider in every bench.routing run (docs)
ROUTE = "fleet"


def scaled_routing(settings: dict[str, Any], speedup: float) -> dict[str, Any]:
    """The `routing:` section of the gateway: the fleet file's settings (defaults included) on
    the fleet's clock. The config names its units: a setting ending in `_per_s` is a rate and
    is multiplied by `speedup`, one ending in `_s` or `_ms` a duration and is divided by it."""
    return _scaled(RoutingConfig.model_validate(settings).model_dump(mode="json"), speedup)


def _scaled(section: dict[str, Any], speedup: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in section.items():
        if isinstance(value, dict):
            value = _scaled(value, speedup)
        elif value is not None and name.endswith("_per_s"):
            value = value * speedup
        elif value is not None and name.endswith(("_s", "_ms")):
            value = value / speedup
        out[name] = value
    return out


def gateway_yaml(fleet: dict[str, Any], upstream: str, speedup: float) -> str:
    """The gateway's configuration (JSON is YAML) for the `relaygate` strategy."""
    providers = [
        {
            "name": spec["name"],
            "type": "openai_compatible",
            "base_url": f"{upstream}/relaygate/{spec['name']}/v1",
            "api_key": "env:STUB_KEY",
            "models": [
                {
                    "name": spec["model"],
                    "context_window": spec["context_window"],
                    "max_output_tokens": 4096,
                    "input_price": spec["input_price"],
                    "output_price": spec["output_price"],
                }
            ],
        }
        for spec in fleet["providers"]
    ]
    targets = [f"{spec['name']}/{spec['model']}" for spec in fleet["providers"]]
    settings = fleet["routers"]["relaygate"]
    config = {
        "server": {"workers": 1},
        "providers": providers,
        "routes": [{"name": ROUTE, "targets": targets}],
        "routing": scaled_routing(settings, speedup),
    }
    return json.dumps(config, indent=2)


def chat_body(model: str, request: Request) -> dict[str, Any]:
    """The chat request for `request`: a prompt of about its size in tokens whose first word
    tells the fleet server that size."""
    text = f"{request.prompt}" + " the" * max(0, request.prompt - 1)
    return {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": request.output,
    }


class FleetServer:
    """The simulated providers over HTTP, one copy of the fleet per strategy."""

    def __init__(self, fleets: dict[str, list[Provider]], speedup: float) -> None:
        self.fleets = {k: {p.name: p for p in v} for k, v in fleets.items()}
        self.speedup = speedup
        self.started = time.monotonic()

    def fleet_time(self) -> float:
        return (time.monotonic() - self.started) * self.speedup

    async def chat(self, request: web.Request) -> web.Response:
        provider = self.fleets[request.match_info["strategy"]][request.match_info["provider"]]
        body = await request.json()
        prompt = int(str(body["messages"][-1]["content"]).split(" ", 1)[0])
        output = int(body.get("max_completion_tokens") or body.get("max_tokens") or 256)
        at = self.fleet_time()
        seconds, error, retry_after = provider.call(at, Request(at, prompt, output))
        await asyncio.sleep(seconds / self.speedup)
        if error == "rate_limited":
            wait_ms = (retry_after or 1.0) * 1000 / self.speedup
            return _error(429, "rate_limit_exceeded", {"retry-after-ms": f"{wait_ms:.0f}"})
        if error == "unavailable":
            return _error(503, "service_unavailable", {})
        if error is not None:
            return _error(500, "server_error", {})
        return web.json_response(completion_body(body["model"], "ok", prompt, output))


def _error(status: int, code: str, headers: dict[str, str]) -> web.Response:
    body = {"error": {"message": code, "type": code, "code": code}}
    return web.json_response(body, status=status, headers=headers)


async def _post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, CIMultiDictProxy[str]]:
    async with session.post(url, json=body, headers=headers) as response:
        await response.read()
        return response.status, response.headers


async def replay(
    requests: list[Request],
    speedup: float,
    gateway: str,
    key: str,
    upstream: str,
    by_name: dict[str, Provider],
) -> tuple[dict[str, list[Outcome]], dict[str, int]]:
    """Every request at its (compressed) arrival time, to the gateway and to the single provider
    directly: the outcomes (in fleet seconds) and how many answers each provider gave through
    the gateway."""
    results: dict[str, list[Outcome]] = {"relaygate": [], f"single:{BEST_SINGLE}": []}
    answered_by: Counter[str] = Counter()
    best = by_name[BEST_SINGLE]
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.monotonic()

        async def via_gateway(request: Request) -> None:
            begun = time.monotonic()
            status, headers = await _post(
                session,
                f"{gateway}/v1/chat/completions",
                chat_body(ROUTE, request),
                {"Authorization": f"Bearer {key}"},
            )
            seconds = (time.monotonic() - begun) * speedup
            cost = 0.0
            if status == 200:
                provider = headers["x-relaygate-provider"]
                answered_by[provider] += 1
                cost = by_name[provider].price(request)
            results["relaygate"].append(Outcome(seconds, status == 200, cost, request.long))

        async def direct(request: Request) -> None:
            body = chat_body(best.spec["model"], request)
            url = f"{upstream}/single/{BEST_SINGLE}/v1/chat/completions"
            begun = time.monotonic()
            status, headers = await _post(session, url, body, {})
            if status != 200:  # the client retries once, after Retry-After on a 429
                wait_ms = float(headers.get("retry-after-ms", "0"))
                await asyncio.sleep(wait_ms / 1000 or 1.0 / speedup)
                status, _ = await _post(session, url, body, {})
            seconds = (time.monotonic() - begun) * speedup
            cost = best.price(request) if status == 200 else 0.0
            results[f"single:{BEST_SINGLE}"].append(
                Outcome(seconds, status == 200, cost, request.long)
            )

        tasks = []
        for request in requests:
            delay = started + request.at / speedup - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(via_gateway(request)))
            tasks.append(asyncio.create_task(direct(request)))
        await asyncio.gather(*tasks)
    return results, dict(answered_by)


async def run(seed: int, speedup: float, seconds: float | None = None) -> dict[str, Any]:
    """One seed through the gateway (`seconds` of fleet time, the fleet file's by default);
    the same seed in virtual time beside it."""
    fleet = json.loads(FLEET.read_text())
    seconds = seconds or float(fleet["seconds"])
    requests = workload(fleet, seconds, random.Random(seed))
    fleets = {"relaygate": fleet_providers(fleet, seed), "single": fleet_providers(fleet, seed)}
    server = FleetServer(fleets, speedup)
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/{strategy}/{provider}/v1/chat/completions", server.chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    upstream = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="relaygate-routing-http-") as tmp:
        service, gw_port, key = await asyncio.to_thread(
            start_relaygate_with, Path(tmp), gateway_yaml(fleet, upstream, speedup)
        )
        try:
            server.started = time.monotonic()
            measured, answered_by = await replay(
                requests,
                speedup,
                f"http://127.0.0.1:{gw_port}",
                key,
                upstream,
                {p.name: p for p in fleets["single"]},
            )
        finally:
            service.stop()
            await runner.cleanup()
    quiet_routing_logs()
    profile = router_profiles(fleet)["relaygate"]
    virtual = await asyncio.to_thread(
        run_router, fleet_providers(fleet, seed), requests, seed, profile, seconds
    )
    single = next(p for p in fleet_providers(fleet, seed) if p.name == BEST_SINGLE)
    attempts = 1 + int(fleet["client_retries"])
    return {
        "seed": seed,
        "speedup": speedup,
        "seconds": seconds,
        "http": {name: summarize(outcomes) for name, outcomes in measured.items()},
        "http_answered_by": answered_by,
        "virtual": {
            "relaygate": summarize(virtual),
            f"single:{BEST_SINGLE}": summarize(run_fixed(always([single]), requests, attempts)),
        },
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| strategy | run | p50 s | p95 s | long p50 s | long p95 s | errors | cost USD |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in report["http"]:
        for run_name in ("http", "virtual"):
            r = report[run_name][name]
            lines.append(
                f"| {name} | {run_name} | {r['p50_s']:.2f} | {r['p95_s']:.2f} |"
                f" {r['long_p50_s']:.2f} | {r['long_p95_s']:.2f} | {r['error_rate'] * 100:.2f}% |"
                f" {r['cost_usd']:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--speedup", type=float, default=12.0, help="fleet seconds per second")
    parser.add_argument("--seconds", type=float, help="fleet time (default: the fleet file's)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = asyncio.run(run(args.seed, args.speedup, args.seconds))
    print(markdown(report))
    print(f"answers through the gateway by provider: {report['http_answered_by']}")
    print(f"({time.perf_counter() - started:.1f} s)")
    save_results("routing-http", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
