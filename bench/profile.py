"""Where a request's time goes: py-spy samples of one Relaygate worker under load, by stage.

Starts the stub and one Relaygate worker, drives `--rate` requests per second (non-streaming,
then streaming) for `--seconds` each while `py-spy record` samples the worker, then attributes
every sample to the innermost stage its stack passes through (auth, policy, body, routing,
vault, upstream call, response write, usage record, other gateway code, server and event loop) and
prints the shares, and the CPU time per request so shares can be read as microseconds.

    pip install py-spy          # not a dependency; needs permission to read the worker's memory
    .venv/bin/python -m bench.profile [--rate 300] [--seconds 20] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench import procs
from bench.load import Endpoint, open_loop
from bench.report import save_results

# (stage, substrings of a frame "function (file:line)"), checked from the innermost frame out.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("auth", ("relaygate/api/authn.py", "relaygate/auth/")),
    ("vault", ("relaygate/vault/", "relaygate/providers/credentials.py")),
    ("policy: limits, budgets", ("relaygate/policy/", "relaygate/limits/", "relaygate/budgets/")),
    ("routing", ("relaygate/routing/",)),
    ("body read + parse, validation", ("relaygate/api/body.py", "relaygate/api/validation.py")),
    ("upstream call (http1 client)", ("relaygate/providers/",)),
    ("response write (SSE, send)", ("relaygate/api/sse.py", "starlette/responses.py")),
    ("usage record", ("relaygate/usage/", "relaygate/api/accounting.py")),
    ("disconnect watch", ("relaygate/api/disconnect.py",)),
    ("other gateway code", ("relaygate/",)),
    ("HTTP server (uvicorn, httptools)", ("uvicorn/", "httptools", "starlette/")),
    ("event loop, idle", ("asyncio/", "uvloop", "selectors.py", "select ")),
)


def stage_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for stage, needles in STAGES:
            if any(needle in frame for needle in needles):
                return stage
    return "other"


def summarize(raw: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if stack and number.isdigit():
            counts[stage_of(stack)] += int(number)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--keep", type=Path, help="copy py-spy's raw stacks into this folder")
    args = parser.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    report: dict[str, object] = {"rate": args.rate, "seconds": args.seconds}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        stub, stub_port = procs.start_stub("stub", workdir, delay_ms=0, chunks=10, interval_ms=0)
        gateway, port, key = procs.start_relaygate(
            workdir, stub_port, stub_port, server_yaml=procs.SINGLE_PROCESS
        )
        try:
            endpoint = Endpoint(f"http://127.0.0.1:{port}/v1/chat/completions", key, "fake-gpt")
            for stream in (False, True):
                label = "stream" if stream else "non-stream"
                raw = workdir / f"{label}.txt"
                spy = subprocess.Popen(
                    [
                        pyspy,
                        "record",
                        "--pid",
                        str(gateway.pid),
                        "--rate",
                        "250",
                        "--format",
                        "raw",
                        "--output",
                        str(raw),
                        "--duration",
                        str(int(args.seconds)),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                cpu_before = gateway.cpu_seconds()
                time.sleep(0.5)
                load = asyncio.run(
                    open_loop(endpoint, rate=args.rate, seconds=args.seconds - 1, stream=stream)
                )
                cpu = gateway.cpu_seconds() - cpu_before
                spy.wait(timeout=args.seconds + 30)
                counts = summarize(raw)
                if args.keep is not None:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(raw, args.keep / raw.name)
                total = sum(counts.values()) or 1
                busy = total - counts.get("event loop, idle", 0)
                per_request_us = cpu / max(1, load["requests"]) * 1e6
                rows = {
                    stage: {
                        "share_of_samples": round(n / total, 3),
                        "share_of_busy": round(n / busy, 3)
                        if stage != "event loop, idle"
                        else None,
                    }
                    for stage, n in counts.most_common()
                }
                report[label] = {
                    "requests": load["requests"],
                    "errors": load["errors"],
                    "cpu_us_per_request": round(per_request_us),
                    "stages": rows,
                }
                print(f"\n{label}: {load['requests']} requests, {per_request_us:.0f} µs CPU each")
                for stage, n in counts.most_common():
                    if stage == "event loop, idle":
                        print(f"  {stage:<36} {n / total:6.1%} of samples")
                    else:
                        share = n / busy
                        print(
                            f"  {stage:<36} {share:6.1%} of busy  ~{share * per_request_us:5.0f} µs"
                        )
        finally:
            gateway.stop()
            stub.stop()
    print()
    save_results("profile", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
