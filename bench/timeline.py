"""Where one request's wall-clock time goes inside the gateway, at a low fixed rate.

`bench.profile` samples CPU; this measures elapsed time on the request's own path, which is
what the added latency is made of. It starts the stub and one Relaygate worker whose
`sitecustomize` (bench/probes) marks the moments a non-streamed chat completion passes through
the server, each stage of the handler, the upstream call and the response write, then drives
`--rate` requests per second for `--seconds` and prints, for each mark, the median time since
the request's bytes arrived and the step from the mark before.

    .venv/bin/python -m bench.timeline [--rate 100] [--seconds 20]

The probes cost a few microseconds each (about 30 marks per request), so the total runs a
little above the real one. Requests must not overlap: keep the rate at or below 100 req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import procs
from bench.load import Endpoint, open_loop
from bench.report import save_results

PROBES = Path(__file__).resolve().parent / "probes"
START = "request bytes received"


def summarize(requests: list[dict[str, int]]) -> list[dict[str, Any]]:
    """Median microseconds from `START` to each mark, in order, over complete requests."""
    complete = [r for r in requests if START in r and "handler end" in r]
    if not complete:
        return []
    marks = {name for r in complete for name in r}
    offsets = {
        name: statistics.median((r[name] - r[START]) / 1000 for r in complete if name in r)
        for name in marks
    }
    rows: list[dict[str, Any]] = []
    previous = 0.0
    for name in sorted(offsets, key=offsets.__getitem__):
        rows.append(
            {
                "mark": name,
                "since_received_us": round(offsets[name], 1),
                "step_us": round(offsets[name] - previous, 1),
            }
        )
        previous = offsets[name]
    return rows


def _collect(pid: int, marks_file: Path) -> list[dict[str, int]]:
    """Signal the gateway to write its marks, wait for the file, read it and remove it."""
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if marks_file.exists() and marks_file.stat().st_size:
            try:
                requests: list[dict[str, int]] = json.loads(marks_file.read_text())
            except json.JSONDecodeError:
                continue  # still being written
            marks_file.unlink()
            return requests
    raise RuntimeError("the gateway wrote no marks (were the probes loaded?)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        marks_file = workdir / "marks.json"
        stub, stub_port = procs.start_stub("stub", workdir, delay_ms=0, chunks=10, interval_ms=5)
        stack.callback(stub.stop)
        gateway, port, key = procs.start_relaygate(
            workdir,
            stub_port,
            stub_port,
            server_yaml=procs.SINGLE_PROCESS,
            extra_env={"PYTHONPATH": str(PROBES), "RELAYGATE_TIMELINE_OUT": str(marks_file)},
        )
        stack.callback(gateway.stop)
        endpoint = Endpoint(f"http://127.0.0.1:{port}/v1/chat/completions", key, "fake-gpt")
        asyncio.run(open_loop(endpoint, rate=args.rate, seconds=2, stream=False))
        pid = gateway.processes()[0].pid
        _collect(pid, marks_file)  # the warm-up's marks, dropped
        load = asyncio.run(open_loop(endpoint, rate=args.rate, seconds=args.seconds, stream=False))
        requests = _collect(pid, marks_file)
    return {
        "rate": args.rate,
        "seconds": args.seconds,
        "requests_marked": len(requests),
        "client_p50_ms": round(load["p50_ms"], 3),
        "errors": load["errors"],
        "timeline": summarize(requests),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    report = run(args)
    print(f"{'mark':36} {'since bytes in, us':>20} {'step, us':>10}")
    for row in report["timeline"]:
        print(f"{row['mark']:36} {row['since_received_us']:20.1f} {row['step_us']:10.1f}")
    save_results("timeline", report)
    return 0 if report["errors"] == 0 and report["timeline"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
