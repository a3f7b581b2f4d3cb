"""Did a change make the gateway faster? Interleaved A/B of added latency at a fixed rate.

Starts the upstream stub and two Relaygate workers: A runs the source of a git revision
(`--baseline`, default HEAD), B the working tree. Then, for `--rounds` rounds, it drives each of
direct-to-stub, A and B at `--rate` requests per second for `--seconds` (open loop, the same
load as the suite's latency runs), alternating the order every round so that drift of this
machine affects all three alike. `--pairs N` repeats that with fresh A and B processes N times.
Prints each round's p50 and, per gateway, the added latency (its p50/p99 minus direct's in the
same round): the median over all rounds and every round's value.

    .venv/bin/python -m bench.ab [--baseline REV] [--rate 100] [--rounds 7] [--pairs 1]
    .venv/bin/python -m bench.ab --ttft [--streams 200]   # time to first token instead

With `--ttft` each round is `--streams` sequential streams from a paced stub (the suite's
time-to-first-token setup: first chunk after 10 ms, then one every 5 ms), and the figures are
the added time to the first content token.

On this VM two processes running the same code can differ by up to 0.3 ms of added p50 (process
layout, and the machine's drift from minute to minute), so a smaller change needs several
pairs to show. A's source comes from `git archive`, so only committed changes are in A; both
run with this environment's packages.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import procs
from bench.load import Endpoint, open_loop, stream_timing
from bench.report import save_results

ROOT = Path(__file__).resolve().parent.parent
QUANTILES = ("p50_ms", "p99_ms")
TTFT_QUANTILES = ("ttft_p50_ms", "ttft_p99_ms")
Measure = Callable[[Endpoint], dict[str, Any]]


def export_source(revision: str, into: Path) -> Path:
    """The `src` folder of `revision`, extracted under `into`; returns the folder to import from."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "src"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def added(
    rounds: list[dict[str, Any]], name: str, quantiles: tuple[str, ...] = QUANTILES
) -> dict[str, Any]:
    """Per quantile: `name`'s latency minus direct's, round by round, and the median of those."""
    summary: dict[str, Any] = {}
    for quantile in quantiles:
        values = [r[name][quantile] - r["direct"][quantile] for r in rounds]
        summary[quantile] = {
            "median": round(statistics.median(values), 3),
            "rounds": [round(v, 3) for v in values],
        }
    return summary


def open_loop_measure(rate: float, seconds: float, stream: bool) -> Measure:
    """One open-loop run at `rate` for `seconds`."""
    return lambda endpoint: asyncio.run(
        open_loop(endpoint, rate=rate, seconds=seconds, stream=stream)
    )


def ttft_measure(streams: int) -> Measure:
    """Time to first token of `streams` sequential streams."""
    return lambda endpoint: asyncio.run(stream_timing(endpoint, streams=streams))


def interleaved(
    endpoints: dict[str, Endpoint],
    *,
    measure: Measure,
    rounds: int,
    label: str = "",
    quantile: str = "p50_ms",
) -> list[dict[str, Any]]:
    """`rounds` runs of `measure` on every endpoint, the order reversed every other round so
    that drift of the machine affects all alike; prints each round's `quantile`."""
    results: list[dict[str, Any]] = []
    for index in range(rounds):
        order = list(endpoints.items())
        if index % 2:
            order.reverse()
        measured = {name: measure(endpoint) for name, endpoint in order}
        results.append(measured)
        print(
            f"{label}round {index + 1}: {quantile} "
            + ", ".join(f"{n} {measured[n][quantile]:.3f}" for n in endpoints),
            flush=True,
        )
    return results


def summary_line(name: str, figures: dict[str, Any]) -> str:
    """`name`'s median added figures (the output of `added`), in one line."""
    parts = [f"{q.removesuffix('_ms')} {f['median']:+.3f} ms" for q, f in figures.items()]
    count = len(next(iter(figures.values()))["rounds"])
    return f"{name}: added {', '.join(parts)} (median of {count} rounds)"


def _start_gateway(
    workdir: Path, stub_port: int, source: Path | None
) -> tuple[procs.Service, Endpoint]:
    # With `source`, the gateway imports relaygate from there instead of the working tree.
    extra_env = {"PYTHONPATH": str(source)} if source is not None else None
    gateway, port, key = procs.start_relaygate(workdir, stub_port, stub_port, extra_env=extra_env)
    return gateway, Endpoint(f"http://127.0.0.1:{port}/v1/chat/completions", key, "fake-gpt")


def run(args: argparse.Namespace) -> dict[str, Any]:
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        baseline_src = export_source(args.baseline, workdir)
        if args.ttft:
            stub, stub_port = procs.start_paced_stub("stub", workdir)
            measure = ttft_measure(args.streams)
            quantiles, quantile = TTFT_QUANTILES, "ttft_p50_ms"
        else:
            stub, stub_port = procs.start_stub(
                "stub", workdir, delay_ms=0, chunks=10, interval_ms=5
            )
            measure = open_loop_measure(args.rate, args.seconds, args.stream)
            quantiles, quantile = QUANTILES, "p50_ms"
        stack.callback(stub.stop)
        direct = Endpoint(f"http://127.0.0.1:{stub_port}/v1/chat/completions", "stub", "fake-gpt")
        for pair in range(args.pairs):
            # Fresh processes for each pair, started in alternating order: a process's own
            # memory layout shifts its latency by tenths of a millisecond.
            sources = [("A", baseline_src), ("B", None)]
            if pair % 2:
                sources.reverse()
            gateways: list[procs.Service] = []
            endpoints = {"direct": direct}
            try:
                for name, source in sources:
                    gateway_dir = workdir / f"{name}{pair}"
                    gateway_dir.mkdir()
                    gateway, endpoints[name] = _start_gateway(gateway_dir, stub_port, source)
                    gateways.append(gateway)
                warm_up = open_loop_measure(args.rate, args.warmup_s, args.ttft or args.stream)
                for endpoint in endpoints.values():  # not recorded
                    warm_up(endpoint)
                rounds += interleaved(
                    endpoints,
                    measure=measure,
                    rounds=args.rounds,
                    label=f"pair {pair + 1} ",
                    quantile=quantile,
                )
            finally:
                for gateway in gateways:
                    gateway.stop()
    errors = {name: sum(r[name]["errors"] for r in rounds) for name in ("direct", "A", "B")}
    return {
        "baseline": args.baseline,
        "rate": args.rate,
        "seconds": args.seconds,
        "pairs": args.pairs,
        "stream": args.stream,
        "ttft": args.ttft,
        "streams": args.streams if args.ttft else None,
        "errors": errors,
        "added_A_baseline": added(rounds, "A", quantiles),
        "added_B_working_tree": added(rounds, "B", quantiles),
        f"direct_{quantile}": [round(r["direct"][quantile], 3) for r in rounds],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD", help="git revision for gateway A")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--rounds", type=int, default=7, help="per pair of gateway processes")
    parser.add_argument(
        "--pairs", type=int, default=1, help="start A and B afresh this many times (default 1)"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="per target and round")
    parser.add_argument("--warmup-s", type=float, default=2.0, help="per target, not recorded")
    parser.add_argument("--stream", action="store_true", help="streamed requests")
    parser.add_argument(
        "--ttft", action="store_true", help="time to first token of sequential paced streams"
    )
    parser.add_argument("--streams", type=int, default=200, help="per round with --ttft")
    args = parser.parse_args(argv)
    report = run(args)
    for name in ("A_baseline", "B_working_tree"):
        print(summary_line(name, report[f"added_{name}"]))
    save_results("ab", report)
    return 0 if not any(report["errors"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
