"""Run the benchmark suite: direct stub vs Relaygate vs LiteLLM's proxy.

    python -m bench.run            # full run (about 18 minutes; installs LiteLLM once)
    python -m bench.run --quick    # CI smoke run: a few seconds per target, no LiteLLM

Each latency figure at a fixed rate is the median of interleaved rounds (3 in a full run, the
order of the targets reversed every other round); an added latency is the median of the
per-round differences to the direct run of the same round. Results go to
bench/results/<timestamp>.json; a table is printed; the full run also draws
docs/benchmarks.png when matplotlib is importable.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench import load, procs
from bench.ab import added
from bench.charts import MISSING, pyplot

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
CHART = ROOT / "docs" / "benchmarks.png"

FAST_CHUNKS = 20


@dataclass
class Target:
    """One way of reaching the stub: directly or through a gateway."""

    name: str
    fast: load.Endpoint
    paced: load.Endpoint
    service: procs.Service  # whose CPU and memory are charged to this target


@dataclass(frozen=True)
class Plan:
    quick: bool
    wrk_seconds: float
    rates: tuple[float, ...]
    rate_seconds: float
    streams: int
    connections: int
    rounds: int  # open-loop runs per target and rate, their order alternating

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, 3, (100.0,), 3, 20, 50, 1)
        return cls(False, 10, (100.0, 250.0, 500.0, 1000.0), 8, 200, 50, 3)


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_at_start": os.getloadavg(),
    }


def measure(
    target: Target, fn: Callable[[], dict[str, Any]], *, sample_rss: bool = True
) -> dict[str, Any]:
    """Run `fn` while charging the target's process for CPU time and peak RSS."""
    cpu_before = target.service.cpu_seconds()
    with procs.RssSampler(target.service) as sampler:
        result = fn()
    cpu = target.service.cpu_seconds() - cpu_before
    requests = result.get("requests", 0)
    result["cpu_s"] = cpu
    result["cpu_ms_per_request"] = cpu * 1000 / requests if requests else float("nan")
    if sample_rss:
        result["rss_peak_mib"] = sampler.peak / 2**20
    return result


def _mib(value: int) -> float:
    return value / 2**20


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan.make(args.quick)
    services: list[procs.Service] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="relaygate-bench-") as tmp:
        workdir = Path(tmp)
        try:
            fast, fast_port = procs.start_stub(
                "stub-fast", workdir, delay_ms=0, chunks=FAST_CHUNKS, interval_ms=0
            )
            services.append(fast)
            paced, paced_port = procs.start_paced_stub("stub-paced", workdir)
            services.append(paced)
            path = "/v1/chat/completions"
            targets = [
                Target(
                    "direct",
                    load.Endpoint(f"http://127.0.0.1:{fast_port}{path}", "none", "fake-gpt"),
                    load.Endpoint(f"http://127.0.0.1:{paced_port}{path}", "none", "fake-gpt-paced"),
                    fast,
                )
            ]
            gateway, port, key = procs.start_relaygate(workdir, fast_port, paced_port)
            services.append(gateway)
            base = f"http://127.0.0.1:{port}{path}"
            targets.append(
                Target(
                    "relaygate",
                    load.Endpoint(base, key, "fake-gpt"),
                    load.Endpoint(base, key, "fake-gpt-paced"),
                    gateway,
                )
            )
            if args.quick or args.skip_litellm:
                notes.append("LiteLLM skipped (--quick or --skip-litellm)")
            else:
                try:
                    venv = procs.ensure_litellm(args.cache_dir)
                    litellm, lport, lkey = procs.start_litellm(venv, workdir, fast_port, paced_port)
                    services.append(litellm)
                    lbase = f"http://127.0.0.1:{lport}{path}"
                    targets.append(
                        Target(
                            "litellm",
                            load.Endpoint(lbase, lkey, "fake-gpt"),
                            load.Endpoint(lbase, lkey, "fake-gpt-paced"),
                            litellm,
                        )
                    )
                except Exception as exc:
                    banner = "!" * 72
                    message = f"LiteLLM could not be installed or started: {exc}"
                    print(f"\n{banner}\n{message}\nContinuing without it.\n{banner}\n", flush=True)
                    notes.append(message.splitlines()[0])
            return _measure_all(targets, plan, workdir, notes)
        finally:
            for service in reversed(services):
                service.stop()


def _measure_all(
    targets: list[Target], plan: Plan, workdir: Path, notes: list[str]
) -> dict[str, Any]:
    results: dict[str, Any] = {t.name: {} for t in targets}
    for target in targets:
        results[target.name]["rss_idle_mib"] = _mib(target.service.rss_bytes())
        # a short warm-up so lazy imports, pools and caches are in place
        asyncio.run(load.open_loop(target.fast, rate=50, seconds=1, stream=False, warmup_s=0))
        asyncio.run(load.open_loop(target.fast, rate=20, seconds=1, stream=True, warmup_s=0))
        results[target.name]["rss_warm_mib"] = _mib(target.service.rss_bytes())

    # 1. saturation throughput, closed loop, targets interleaved per mode
    for mode in ("nonstream", "stream"):
        for target in targets:
            print(f"[throughput] {mode:9} {target.name} ...", flush=True)
            result = measure(
                target,
                lambda t=target, m=mode: load.run_wrk(  # type: ignore[misc]
                    t.fast,
                    stream=m == "stream",
                    seconds=plan.wrk_seconds,
                    connections=plan.connections,
                    threads=2,
                    workdir=workdir,
                ),
            )
            results[target.name][f"throughput_{mode}"] = result

    # 2. open-loop latency at fixed rates: at each rate, `plan.rounds` rounds of every target,
    # the order reversed every other round, so a drift of the machine reaches all alike
    for mode in ("nonstream", "stream"):
        for rate in plan.rates:
            key = f"latency_{mode}"
            measured: dict[str, list[dict[str, Any]]] = {}
            for target in targets:
                ceiling = results[target.name][f"throughput_{mode}"]["rps"]
                results[target.name].setdefault(key, [])
                if rate > 0.8 * ceiling:
                    results[target.name][key].append(
                        {"rate": rate, "skipped": f"above 80% of saturation ({ceiling:.0f}/s)"}
                    )
                else:
                    measured[target.name] = []
            running = [t for t in targets if t.name in measured]
            for index in range(plan.rounds):
                for target in running if index % 2 == 0 else running[::-1]:
                    print(
                        f"[latency]    {mode:9} {rate:6.0f}/s {target.name}"
                        f" (round {index + 1}/{plan.rounds}) ...",
                        flush=True,
                    )
                    result = measure(
                        target,
                        lambda t=target, r=rate, m=mode: asyncio.run(  # type: ignore[misc]
                            load.open_loop(
                                t.fast, rate=r, seconds=plan.rate_seconds, stream=m == "stream"
                            )
                        ),
                        sample_rss=False,
                    )
                    measured[target.name].append(result)
            for name, rounds in measured.items():
                results[name][key].append(_merge_rounds(rounds, measured.get("direct")))

    # 3. streaming: time to first token and chunk gaps on the paced stub
    for target in targets:
        print(f"[ttft]       {plan.streams} sequential streams {target.name} ...", flush=True)
        result = asyncio.run(load.stream_timing(target.paced, streams=plan.streams))
        gaps = result.pop("gaps_ms")
        half = procs.PACED_INTERVAL_MS / 2
        result["gap_under_half_interval_share"] = (
            sum(1 for g in gaps if g < half) / len(gaps) if gaps else float("nan")
        )
        results[target.name]["streaming"] = result

    for target in targets:
        results[target.name]["rss_after_mib"] = _mib(target.service.rss_bytes())

    return {"results": results, "notes": notes, "plan": plan.__dict__}


QUANTILES = ("p50_ms", "p95_ms", "p99_ms")


def _merge_rounds(
    rounds: list[dict[str, Any]], direct: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """One row for a target at one rate: each latency quantile the median of its rounds, and
    (`added_<q>`) the median of its per-round difference to direct's run in the same round."""
    row: dict[str, Any] = {"rate": rounds[0]["rate"], "rounds": len(rounds)}
    for field in ("requests", "errors", "cpu_s"):
        row[field] = sum(r[field] for r in rounds)
    row["cpu_ms_per_request"] = (
        row["cpu_s"] * 1000 / row["requests"] if row["requests"] else float("nan")
    )
    row["achieved_rps"] = statistics.median(r["achieved_rps"] for r in rounds)
    row["max_ms"] = max(r["max_ms"] for r in rounds)
    row["max_dispatch_lag_ms"] = max(r["max_dispatch_lag_ms"] for r in rounds)
    for field in QUANTILES:
        row[field] = statistics.median(r[field] for r in rounds)
        row[f"{field}_rounds"] = [round(r[field], 3) for r in rounds]
    if direct is not None:
        paired = [{"target": r, "direct": d} for r, d in zip(rounds, direct, strict=True)]
        for field, figures in added(paired, "target", QUANTILES).items():
            row[f"added_{field}"] = figures["median"]
    return row


def _added(results: dict[str, Any], name: str, mode: str, rate: float, field: str) -> float:
    """`name`'s added latency at `rate`: the median over rounds of its difference to direct."""
    for row in results[name].get(f"latency_{mode}", []):
        if row.get("rate") == rate and "skipped" not in row:
            return float(row.get(f"added_{field}", math.nan))
    return math.nan


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """Derived figures: added latency and TTFT versus direct, throughput ratios, targets."""
    results = report["results"]
    summary: dict[str, Any] = {}
    for name in results:
        if name == "direct":
            continue
        row: dict[str, Any] = {}
        for mode in ("nonstream", "stream"):
            for field in ("p50_ms", "p95_ms", "p99_ms"):
                row[f"added_{mode}_100rps_{field}"] = _added(results, name, mode, 100.0, field)
        direct_ttft = results["direct"]["streaming"]["ttft_p50_ms"]
        row["added_ttft_p50_ms"] = results[name]["streaming"]["ttft_p50_ms"] - direct_ttft
        row["added_ttft_p95_ms"] = (
            results[name]["streaming"]["ttft_p95_ms"]
            - results["direct"]["streaming"]["ttft_p95_ms"]
        )
        direct_gap = results["direct"]["streaming"]["gap_p50_ms"]
        stream = results[name]["streaming"]
        row["chunk_timing_preserved"] = bool(
            abs(stream["gap_p50_ms"] - direct_gap) <= 1.0
            and stream["gap_under_half_interval_share"] <= 0.05
            and abs(stream["content_chunks_mean"] - procs.PACED_CHUNKS) < 0.01
        )
        summary[name] = row
    if "litellm" in results and "relaygate" in results:
        for mode in ("nonstream", "stream"):
            rg = results["relaygate"][f"throughput_{mode}"]["rps"]
            ll = results["litellm"][f"throughput_{mode}"]["rps"]
            summary["relaygate"][f"throughput_ratio_vs_litellm_{mode}"] = (
                rg / ll if ll else math.inf
            )
    rg_sum = summary.get("relaygate", {})
    targets: dict[str, Any] = {
        "added_p50_100rps_le_1ms": rg_sum.get("added_nonstream_100rps_p50_ms", math.nan) <= 1.0,
        "added_p99_100rps_le_5ms": rg_sum.get("added_nonstream_100rps_p99_ms", math.nan) <= 5.0,
        "added_ttft_p50_le_2ms": rg_sum.get("added_ttft_p50_ms", math.nan) <= 2.0,
        "chunk_timing_preserved": rg_sum.get("chunk_timing_preserved", False),
    }
    for mode in ("nonstream", "stream"):
        ratio = rg_sum.get(f"throughput_ratio_vs_litellm_{mode}")
        targets[f"throughput_ge_10x_litellm_{mode}"] = None if ratio is None else ratio >= 10
    summary["targets"] = targets
    return summary


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def table(report: dict[str, Any]) -> str:
    results = report["results"]
    summary = report["summary"]
    lines = [
        "| target | req/s non-stream | req/s stream | CPU ms/req (non-stream) | CPU ms/req (stream)"
        " | p50 / p99 ms @100/s | added p50 / p99 ms @100/s | TTFT p50 ms | added TTFT p50 ms"
        " | chunk gap p50 ms | RSS idle / peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        at100: dict[str, Any] = next(
            (r for r in res.get("latency_nonstream", []) if r.get("rate") == 100.0), {}
        )
        added = summary.get(name, {})
        peak = max(
            res["throughput_nonstream"].get("rss_peak_mib", 0.0),
            res["throughput_stream"].get("rss_peak_mib", 0.0),
        )
        lines.append(
            f"| {name} | {res['throughput_nonstream']['rps']:.0f}"
            f" | {res['throughput_stream']['rps']:.0f}"
            f" | {_fmt(res['throughput_nonstream']['cpu_ms_per_request'], 3)}"
            f" | {_fmt(res['throughput_stream']['cpu_ms_per_request'], 3)}"
            f" | {_fmt(at100.get('p50_ms'))} / {_fmt(at100.get('p99_ms'))}"
            f" | {_fmt(added.get('added_nonstream_100rps_p50_ms'))}"
            f" / {_fmt(added.get('added_nonstream_100rps_p99_ms'))}"
            f" | {_fmt(res['streaming']['ttft_p50_ms'])}"
            f" | {_fmt(added.get('added_ttft_p50_ms'))}"
            f" | {_fmt(res['streaming']['gap_p50_ms'])}"
            f" | {res['rss_warm_mib']:.0f} / {peak:.0f} |"
        )
    lines.append("")
    lines.append("Open-loop latency (ms, p50 / p99) by rate:")
    for mode in ("nonstream", "stream"):
        for name, res in results.items():
            cells = []
            for row in res.get(f"latency_{mode}", []):
                if "skipped" in row:
                    cells.append(f"{row['rate']:.0f}/s: saturated")
                else:
                    cells.append(
                        f"{row['rate']:.0f}/s: {row['p50_ms']:.2f} / {row['p99_ms']:.2f}"
                        + (f" ({row['errors']} err)" if row["errors"] else "")
                    )
            lines.append(f"  {mode:9} {name:9} " + "; ".join(cells))
    lines.append("")
    lines.append("Targets (Relaygate): " + json.dumps(summary.get("targets", {})))
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> str:
    plt = pyplot()
    if plt is None:
        return MISSING
    results = report["results"]
    names = list(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.38
    xs = range(len(names))
    for offset, mode, label in ((-width / 2, "throughput_nonstream", "non-stream"),
                                (width / 2, "throughput_stream", "stream")):  # fmt: skip
        bars = ax1.bar([x + offset for x in xs], [results[n][mode]["rps"] for n in names], width,
                       label=label)  # fmt: skip
        ax1.bar_label(bars, fmt="%.0f", fontsize=7)
    ax1.set_xticks(list(xs), names)
    ax1.set_yscale("log")  # the stub is ~20x the gateway, the gateway ~20x LiteLLM
    ax1.set_ylabel("req/s (wrk -c50, closed loop, log scale)")
    ax1.set_title("Max throughput, one worker")
    ax1.legend()
    for name in names:
        rows = [r for r in results[name].get("latency_nonstream", []) if "skipped" not in r]
        if rows:
            ax2.plot([r["rate"] for r in rows], [r["p99_ms"] for r in rows], marker="o",
                     label=f"{name} p99")  # fmt: skip
            ax2.plot([r["rate"] for r in rows], [r["p50_ms"] for r in rows], marker=".",
                     linestyle="--", label=f"{name} p50")  # fmt: skip
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("offered load, req/s (open loop)")
    ax2.set_ylabel("latency ms")
    ax2.set_title("Non-stream latency vs rate")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return f"chart written to {path.relative_to(ROOT)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Relaygate benchmark suite")
    parser.add_argument("--quick", action="store_true", help="smoke run, no LiteLLM")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--no-chart", action="store_true")
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=cache_home / "relaygate-bench",
        help="where the LiteLLM venv is kept (default: $XDG_CACHE_HOME/relaygate-bench)",
    )
    args = parser.parse_args(argv)
    if load.wrk_binary() is None:
        print("wrk is required: apt-get install wrk", file=sys.stderr)
        return 2
    started = time.time()
    info = machine()
    report = run_suite(args)
    report["machine"] = info
    report["started"] = dt.datetime.fromtimestamp(started, dt.UTC).isoformat()
    report["elapsed_s"] = time.time() - started
    report["litellm_version"] = procs.LITELLM_VERSION
    report["summary"] = summarize(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = "-quick" if args.quick else ""
    out = RESULTS_DIR / f"{stamp}{suffix}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print()
    print(table(report))
    for note in report["notes"]:
        print(f"note: {note}")
    print(f"results written to {out.relative_to(ROOT)}")
    if not args.quick and not args.no_chart:
        print(chart(report, CHART))
    failures = [
        name
        for name, res in report["results"].items()
        if res["throughput_nonstream"]["errors"] or res["streaming"]["errors"]
    ]
    if failures:
        print(f"errors seen for: {', '.join(failures)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
