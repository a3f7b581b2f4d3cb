"""How much of the gateway's added latency is the server it runs on: the floor of a Python proxy.

Starts the stub, one Relaygate worker (default features) and the three reference proxies of
`bench.reference_proxy` (an ASGI app on uvicorn; the same app on a minimal ASGI server; an
asyncio protocol on httptools without ASGI), then drives direct-to-stub and each of the four at
`--rate` requests per second, non-streamed, for `--rounds` rounds of `--seconds`, alternating
the order every round like `bench.ab`. Prints each round's p50 and, per target, the added
latency (its p50/p99 minus direct's in the same round).

    .venv/bin/python -m bench.floor [--rate 100] [--rounds 7] [--seconds 8]

The uvicorn proxy is what any gateway on uvicorn adds before doing anything; the difference to
the raw proxy is what a purpose-built HTTP server for the data plane could save.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import procs
from bench.ab import added, interleaved, open_loop_measure, summary_line
from bench.load import Endpoint
from bench.report import save_results

PROXIES = {"uvicorn-proxy": "uvicorn", "asgi-lite-proxy": "asgi-lite", "raw-proxy": "raw"}


def _wait_listening(service: procs.Service, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.popen.poll() is not None:
            raise RuntimeError(f"{service.name} exited early:\n{service.log_tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{service.name} not listening after {timeout:.0f} s")


def _start_proxy(kind: str, workdir: Path, stub_port: int) -> tuple[procs.Service, int]:
    port = procs.free_port()
    argv = [sys.executable, "-m", "bench.reference_proxy", "--kind", kind]
    argv += ["--port", str(port), "--upstream", f"http://127.0.0.1:{stub_port}"]
    service = procs.start(f"{kind}-proxy", argv, procs.bench_env(), workdir)
    _wait_listening(service, port)
    return service, port


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        stub, stub_port = procs.start_stub("stub", workdir, delay_ms=0, chunks=10, interval_ms=5)
        stack.callback(stub.stop)
        gateway, port, key = procs.start_relaygate(workdir, stub_port, stub_port)
        stack.callback(gateway.stop)
        path = "/v1/chat/completions"
        endpoints = {
            "direct": Endpoint(f"http://127.0.0.1:{stub_port}{path}", "stub", "fake-gpt"),
            "relaygate": Endpoint(f"http://127.0.0.1:{port}{path}", key, "fake-gpt"),
        }
        for name, kind in PROXIES.items():
            proxy, proxy_port = _start_proxy(kind, workdir, stub_port)
            stack.callback(proxy.stop)
            endpoints[name] = Endpoint(f"http://127.0.0.1:{proxy_port}{path}", "-", "fake-gpt")
        warm_up = open_loop_measure(args.rate, args.warmup_s, False)
        for endpoint in endpoints.values():  # not recorded
            warm_up(endpoint)
        measure = open_loop_measure(args.rate, args.seconds, False)
        rounds = interleaved(endpoints, measure=measure, rounds=args.rounds)
    names = [name for name in endpoints if name != "direct"]
    return {
        "rate": args.rate,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "errors": {name: sum(r[name]["errors"] for r in rounds) for name in endpoints},
        "added": {name: added(rounds, name) for name in names},
        "direct_p50_ms": [round(r["direct"]["p50_ms"], 3) for r in rounds],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup-s", type=float, default=3.0)
    args = parser.parse_args(argv)
    report = run(args)
    for name, figures in report["added"].items():
        print(summary_line(name, figures))
    save_results("floor", report)
    return 0 if not any(report["errors"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
