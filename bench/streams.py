"""Many concurrent slow streams through one Relaygate worker: errors and memory.

Starts the upstream stub in slow-stream mode (one chunk every `--interval-ms`, `--chunks` chunks)
and one Relaygate worker with default features (auth, limits, usage records), then opens
`--streams` streaming chat completions at `--ramp` per second from this process (raw asyncio
sockets: a few kilobytes per stream) and keeps them open until `[DONE]`. Reports the errors
(anything but 200 + every chunk + `[DONE]`), the gateway's resident memory idle, with every stream
open, after they finish and after some idle time, and how long opening took.

    .venv/bin/python -m bench.streams [--streams 5000] [--interval-ms 2000] [--chunks 20]

Each stream holds a client and an upstream connection, so the gateway needs about two file
descriptors per stream (the script raises its own soft limit, which the processes it starts
inherit) and `providers[].max_connections` at least the stream count (default 256: a deliberate
cap on upstream concurrency; the benchmark sets 6000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs
from bench.report import save_results


@dataclass
class StreamResult:
    status: int = 0
    chunks: int = 0
    done: bool = False
    first_byte_s: float | None = None
    error: str | None = None


def _chat_request(key: str, body: bytes, *, close: bool) -> bytes:
    """The raw HTTP/1.1 bytes of a chat completion POST (this script's client has no library)."""
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n".encode()
        + (b"Connection: close\r\n" if close else b"")
        + b"\r\n"
        + body
    )


async def one_stream(port: int, key: str, body: bytes, expected: int) -> StreamResult:
    result = StreamResult()
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        result.error = f"connect: {exc.strerror}"
        return result
    try:
        writer.write(_chat_request(key, body, close=True))
        await writer.drain()
        status_line = await reader.readline()
        result.first_byte_s = time.monotonic() - started
        result.status = int(status_line.split()[1]) if status_line else 0
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # headers
        buffer = b""
        while True:
            data = await reader.read(65536)
            if not data:
                break
            buffer += data
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if line.startswith(b"data: [DONE]"):
                        result.done = True
                    elif line.startswith(b"data: ") and b'"delta"' in line:
                        result.chunks += 1
                    elif line.startswith(b"data: ") and b'"error"' in line:
                        result.error = "error event"
            # strip chunked-encoding size lines, if any, by ignoring non-"data:" lines above
        if result.status != 200:
            result.error = result.error or f"status {result.status}"
        elif not result.done or result.chunks < expected:
            result.error = result.error or f"ended after {result.chunks} chunks"
    except (OSError, ValueError, IndexError) as exc:
        result.error = f"{type(exc).__name__}"
    finally:
        writer.close()
    return result


async def drive(
    port: int, key: str, streams: int, ramp: float, expected: int
) -> list[StreamResult]:
    body = json.dumps(
        {
            "model": "fake-gpt",
            "stream": True,
            "messages": [{"role": "user", "content": "Say hello slowly."}],
        }
    ).encode()
    tasks = []
    for _ in range(streams):
        tasks.append(asyncio.create_task(one_stream(port, key, body, expected)))
        await asyncio.sleep(1 / ramp)
    return list(await asyncio.gather(*tasks))


async def trickle(port: int, key: str, rate: float, seconds: float) -> None:
    """Non-streamed requests at `rate` per second for `seconds`: traffic after a burst."""
    body = json.dumps(
        {"model": "fake-gpt", "messages": [{"role": "user", "content": "After the burst."}]}
    ).encode()
    request = _chat_request(key, body, close=False)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            await asyncio.sleep(1 / rate)
    finally:
        writer.close()


def _mib(value: int) -> float:
    return round(value / 2**20, 1)


def _sockets(service: procs.Service) -> int:
    """Sockets the gateway still holds (idle upstream keep-alive connections count here)."""
    return sum(
        len([c for c in process.net_connections(kind="tcp")]) for process in service.processes()
    )


def _worker_pids(service: procs.Service) -> set[int]:
    """The gateway's processes (the supervisor's workers change when one is recycled)."""
    return {process.pid for process in service.processes()}


def _malloc_trim(service: procs.Service) -> int:
    """Ask glibc to hand free heap pages back (through gdb): what remains is live memory."""
    for process in service.processes():
        subprocess.run(
            ["gdb", "-p", str(process.pid), "-batch", "-ex", "call (int) malloc_trim(0)"],
            capture_output=True,
            check=False,
            timeout=60,
        )
    time.sleep(1)
    return service.rss_bytes()


def run(args: argparse.Namespace) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, args.streams * 3 + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        stub, stub_port = procs.start_stub(
            "stub", workdir, delay_ms=0, chunks=args.chunks, interval_ms=args.interval_ms
        )
        gateway, port, key = procs.start_relaygate(
            workdir, stub_port, stub_port, max_connections=args.streams + 1000
        )
        try:
            time.sleep(2)
            idle = gateway.rss_bytes()
            cpu = 0.0
            rounds = []
            for _ in range(args.rounds):
                started = time.monotonic()
                workers = _worker_pids(gateway)
                cpu_before = gateway.cpu_seconds()
                with procs.RssSampler(gateway, interval=0.5) as sampler:
                    results = asyncio.run(drive(port, key, args.streams, args.ramp, args.chunks))
                elapsed = time.monotonic() - started
                cpu += gateway.cpu_seconds() - cpu_before  # before a replaced worker's is gone
                after = gateway.rss_bytes()
                if args.trickle:
                    asyncio.run(trickle(port, key, args.trickle, args.settle_s))
                else:
                    time.sleep(args.settle_s)
                settled = gateway.rss_bytes()
                rounds.append(
                    {
                        "errors": sum(1 for r in results if r.error),
                        "rss_peak_mib": _mib(sampler.peak),
                        "rss_settled_mib": _mib(settled),
                        "open_sockets_settled": _sockets(gateway),
                        "worker_replaced": _worker_pids(gateway) != workers,
                    }
                )
                if args.trim:
                    rounds[-1]["rss_after_malloc_trim_mib"] = _mib(_malloc_trim(gateway))
        finally:
            gateway.stop()
            stub.stop()
    errors: dict[str, int] = {}
    for r in results:
        if r.error:
            errors[r.error] = errors.get(r.error, 0) + 1
    first = sorted(r.first_byte_s for r in results if r.first_byte_s is not None)
    return {
        "streams": args.streams,
        "chunks_per_stream": args.chunks,
        "interval_ms": args.interval_ms,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "rss_idle_mib": _mib(idle),
        "rss_peak_mib": _mib(sampler.peak),
        "rss_after_mib": _mib(after),
        "rss_settled_mib": _mib(settled),
        "growth_mib": _mib(sampler.peak - idle),
        "per_stream_kib": round((sampler.peak - idle) / max(1, args.streams) / 1024, 1),
        "first_byte_p50_s": round(statistics.median(first), 3) if first else None,
        "first_byte_max_s": round(first[-1], 3) if first else None,
        "wall_s": round(elapsed, 1),
        "gateway_cpu_s": round(cpu, 1),
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--ramp", type=float, default=500.0, help="new streams per second")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--interval-ms", type=float, default=2000.0)
    parser.add_argument(
        "--settle-s",
        type=float,
        default=45.0,
        help="wait after each burst (a grown worker is replaced after 30 s without traffic)",
    )
    parser.add_argument(
        "--trickle",
        type=float,
        default=0.0,
        help="non-streamed requests per second during the settle time (traffic after a burst)",
    )
    parser.add_argument(
        "--trim",
        action="store_true",
        help="after each round, call malloc_trim(0) in the gateway through gdb (diagnostic)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="bursts in a row: a second peak no higher than the first means memory is reused",
    )
    args = parser.parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=2))
    save_results("streams", report)
    return 0 if all(r["errors"] == 0 for r in report["rounds"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
