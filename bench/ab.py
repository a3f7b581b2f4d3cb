"""Did a change make the gateway faster? Interleaved A/B of added latency at a fixed rate.

Starts the upstream stub and two Relaygate workers: A runs the source of a git revision
(`--baseline`, default HEAD), B the working tree. Then, for `--rounds` rounds, it drives each of
direct-to-stub, A and B at `--rate` requests per second for `--seconds` (open loop, the same
load as the suite's latency runs), alternating the order every round so that drift of this
machine affects all three alike. Prints each round's p50 and, per gateway, the added latency
(its p50/p99 minus direct's in the same round): the median over rounds and every round's value.

    .venv/bin/python -m bench.ab [--baseline REV] [--rate 100] [--rounds 7] [--seconds 8]

On this VM single runs of the added p50 at 100 req/s drift by +-0.25 ms from minute to minute,
so a change worth less than about 0.1 ms needs many rounds to show. A's source comes from
`git archive`, so only committed changes are in A; both run with this environment's packages.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import procs
from bench.load import Endpoint, open_loop
from bench.report import save_results

ROOT = Path(__file__).resolve().parent.parent
QUANTILES = ("p50_ms", "p99_ms")


def export_source(revision: str, into: Path) -> Path:
    """The `src` folder of `revision`, extracted under `into`; returns the folder to import from."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "src"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def added(rounds: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Per quantile: `name`'s latency minus direct's, round by round, and the median of those."""
    summary: dict[str, Any] = {}
    for quantile in QUANTILES:
        values = [r[name][quantile] - r["direct"][quantile] for r in rounds]
        summary[quantile] = {
            "median": round(statistics.median(values), 3),
            "rounds": [round(v, 3) for v in values],
        }
    return summary


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        baseline_src = export_source(args.baseline, workdir)
        stub, stub_port = procs.start_stub("stub", workdir, delay_ms=0, chunks=10, interval_ms=5)
        stack.callback(stub.stop)
        endpoints = {
            "direct": Endpoint(
                f"http://127.0.0.1:{stub_port}/v1/chat/completions", "stub-key", "fake-gpt"
            )
        }
        for name, source in (("A", baseline_src), ("B", None)):
            gateway_dir = workdir / name
            gateway_dir.mkdir()
            saved = os.environ.get("PYTHONPATH")
            if source is not None:  # the gateway imports relaygate from here, not the tree
                os.environ["PYTHONPATH"] = str(source)
            try:
                gateway, port, key = procs.start_relaygate(gateway_dir, stub_port, stub_port)
            finally:
                if saved is None:
                    os.environ.pop("PYTHONPATH", None)
                else:
                    os.environ["PYTHONPATH"] = saved
            stack.callback(gateway.stop)
            endpoints[name] = Endpoint(
                f"http://127.0.0.1:{port}/v1/chat/completions", key, "fake-gpt"
            )
        for endpoint in endpoints.values():  # warm-up, not recorded
            asyncio.run(
                open_loop(endpoint, rate=args.rate, seconds=args.warmup_s, stream=args.stream)
            )
        rounds: list[dict[str, Any]] = []
        for index in range(args.rounds):
            order = list(endpoints.items())
            if index % 2:
                order.reverse()
            measured = {
                name: asyncio.run(
                    open_loop(endpoint, rate=args.rate, seconds=args.seconds, stream=args.stream)
                )
                for name, endpoint in order
            }
            rounds.append(measured)
            print(
                f"round {index + 1}: p50 ms "
                + ", ".join(f"{name} {measured[name]['p50_ms']:.3f}" for name in endpoints),
                flush=True,
            )
    errors = {name: sum(r[name]["errors"] for r in rounds) for name in endpoints}
    return {
        "baseline": args.baseline,
        "rate": args.rate,
        "seconds": args.seconds,
        "stream": args.stream,
        "errors": errors,
        "added_A_baseline": added(rounds, "A"),
        "added_B_working_tree": added(rounds, "B"),
        "direct_p50_ms": [round(r["direct"]["p50_ms"], 3) for r in rounds],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD", help="git revision for gateway A")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=8.0, help="per target and round")
    parser.add_argument("--warmup-s", type=float, default=2.0, help="per target, not recorded")
    parser.add_argument("--stream", action="store_true", help="streamed requests")
    args = parser.parse_args(argv)
    report = run(args)
    for name in ("A_baseline", "B_working_tree"):
        figures = report[f"added_{name}"]
        print(
            f"{name}: added p50 {figures['p50_ms']['median']:+.3f} ms, "
            f"p99 {figures['p99_ms']['median']:+.3f} ms (median of {args.rounds} rounds)"
        )
    save_results("ab", report)
    return 0 if not any(report["errors"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
