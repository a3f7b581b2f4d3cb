"""Job intake under sustained load: create jobs at a constant rate, then account for every one.

Starts the upstream stub and one Relaygate worker (default features; jobs run inside the
gateway, or with `--workers N` on a Redis stream consumed by N `relaygate worker` processes),
posts `POST /v1/jobs` open-loop at `--rate` per second for `--seconds`, each with its own
Idempotency-Key, and reports the 202 latency (p50/p99/max), errors, and after the drain how many
jobs succeeded; a job created (202) but never finished counts as lost.

    .venv/bin/python -m bench.jobs [--rate 200] [--seconds 60] [--workers 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import procs
from bench.load import percentile
from bench.report import save_results

Created = tuple[float, int, str | None]  # latency, HTTP status, job id


async def _create(session: aiohttp.ClientSession, url: str, key: str, index: int) -> Created:
    payload = {
        "url": "/v1/chat/completions",
        "body": {"model": "fake-gpt", "messages": [{"role": "user", "content": f"job {index}"}]},
    }
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"bench-{index}"}
    started = time.perf_counter()
    try:
        async with session.post(url, json=payload, headers=headers) as response:
            data = await response.json()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        return time.perf_counter() - started, 0, None
    return time.perf_counter() - started, status, data.get("id") if status == 202 else None


async def drive(port: int, key: str, rate: float, seconds: float) -> list[Created]:
    url = f"http://127.0.0.1:{port}/v1/jobs"
    connector = aiohttp.TCPConnector(limit=1000)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        tasks = []
        start = time.perf_counter() + 0.01
        for index in range(int(rate * seconds)):
            wait = start + index / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(_create(session, url, key, index)))
        return await asyncio.gather(*tasks)


def _rows(database: Path, url: str | None, sql: str) -> list[tuple[Any, ...]]:
    """Rows of `sql` from the gateway's database (its SQLite file, or PostgreSQL)."""
    if url is None:
        with sqlite3.connect(database) as db:
            return db.execute(sql).fetchall()
    import asyncpg

    async def fetch() -> list[tuple[Any, ...]]:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return [tuple(r) for r in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(fetch())


def _forget(redis_url: str, prefix: str) -> None:
    """Delete the run's Redis keys (an intake-only run leaves every job in the stream)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
    finally:
        client.close()


def _statuses(database: Path, url: str | None) -> dict[str, int]:
    return dict(_rows(database, url, "SELECT status, COUNT(*) FROM jobs GROUP BY status"))


def _per_window(results: list[Created], size: int) -> list[float]:
    """p99 of each consecutive `size` requests (a rising series means intake falls behind)."""
    windows = [results[i : i + size] for i in range(0, len(results), size)]
    return [
        round(percentile([lat * 1000 for lat, status, _ in w if status == 202] or [0.0], 99), 1)
        for w in windows
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="relaygate-jobs-") as tmp:
        work = Path(tmp)
        stub, stub_port = procs.start_stub("stub", work, delay_ms=0, chunks=1, interval_ms=0)
        workers: list[procs.Service] = []
        server_yaml = extra_yaml = ""
        prefix = f"bench{time.time_ns()}:"
        if args.database_url:
            server_yaml += f"  database_url: {args.database_url}\n"
        if args.workers or args.intake_only:
            server_yaml += f"  redis_url: {args.redis_url}\n  redis_prefix: '{prefix}'\n"
            extra_yaml = "jobs:\n  queue: redis\n  run_in_gateway: false\n"
        try:
            gateway, port, key = procs.start_relaygate(
                work, stub_port, stub_port, server_yaml=server_yaml, extra_yaml=extra_yaml
            )
            try:
                for index in range(args.workers):
                    workers.append(procs.start_worker(work, f"worker{index}"))
                results = asyncio.run(drive(port, key, args.rate, args.seconds))
                created = {job_id for _, status, job_id in results if job_id}
                database = work / "relaygate-data" / "relaygate.db"
                drain_started = time.monotonic()
                while not args.intake_only:
                    statuses = _statuses(database, args.database_url)
                    if statuses.get("queued", 0) + statuses.get("running", 0) == 0:
                        break
                    if time.monotonic() - drain_started > args.drain_timeout_s:
                        break
                    time.sleep(0.5)
                drain_s = time.monotonic() - drain_started
                # Intake only: a job counts once its row exists (nothing executes it).
                kept = "SELECT id FROM jobs" + (
                    "" if args.intake_only else " WHERE status = 'succeeded'"
                )
                finished = {row[0] for row in _rows(database, args.database_url, kept)}
                statuses = _statuses(database, args.database_url)
            finally:
                for worker in workers:
                    worker.stop()
                gateway.stop()
        finally:
            stub.stop()
            if args.workers or args.intake_only:
                _forget(args.redis_url, prefix)
    latencies = [lat * 1000 for lat, status, _ in results if status == 202]
    return {
        "rate": args.rate,
        "seconds": args.seconds,
        "workers": args.workers,
        "requests": len(results),
        "created": len(created),
        "errors": sum(1 for _, status, _ in results if status != 202),
        "create_p50_ms": round(percentile(latencies, 50), 2),
        "create_p99_ms": round(percentile(latencies, 99), 2),
        "create_max_ms": round(max(latencies), 2) if latencies else None,
        "create_p99_ms_per_10s": _per_window(results, int(args.rate * 10)),
        "intake_only": args.intake_only,
        "succeeded": len(created & finished),
        "lost": len(created - finished),
        "statuses": statuses,
        "drain_after_load_s": round(drain_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=0, help="0: jobs run in the gateway")
    parser.add_argument("--drain-timeout-s", type=float, default=300.0)
    parser.add_argument(
        "--intake-only",
        action="store_true",
        help="queue on Redis with no worker: measures job creation alone",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--database-url",
        help="an empty PostgreSQL database (postgresql+asyncpg://...) instead of SQLite",
    )
    args = parser.parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=2))
    save_results("jobs", report)
    return 0 if report["lost"] == 0 and report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
