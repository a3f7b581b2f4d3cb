"""Processes started at the same instant on an empty database all come up (issue 31, defect 1).

Deployment tools start replicas together. Before the startup lock (store/startup_lock.py) two of
three replicas on an empty PostgreSQL died on `alembic_version` or on the configured key; here
ten `relaygate serve` replicas and two `relaygate worker` processes start at once on a fresh
database, in several rounds, and every one must become ready, answer a chat request with the
configured key, and (the workers) run a job. The same holds on SQLite for a server with several
workers plus a `relaygate worker` sharing its data directory.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from relaygate.vault.master_key import new_master_key
from tests.support.servers import free_port
from tests.support.services import postgres_database, unique_prefix

REPLICAS = 10
WORKERS = 2
TENANT_KEY = "concurrent-start-tenant-key-0123456789abc"
ADMIN_KEY = "concurrent-start-admin-key-0123456789abcde"
DEADLINE_S = 240  # generous: twelve interpreters importing at once on a small, shared machine


@dataclass
class Proc:
    """A started process, its log, and its port (None for a job worker)."""

    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _config(database_url: str | None, redis_url: str, prefix: str) -> dict[str, Any]:
    server: dict[str, Any] = {
        "redis_url": redis_url,
        "redis_prefix": prefix,
        "recycle": {"enabled": False},  # one process per replica: the start is what is tested
    }
    if database_url is not None:
        server["database_url"] = database_url
    return {
        "server": server,
        "jobs": {"queue": "redis", "run_in_gateway": False, "sweep_interval_s": 0.5},
        "providers": [
            {
                "name": "simulator",
                "type": "simulator",
                "simulator": {"ttft_ms": 0, "tokens_per_s": 100000, "max_reply_tokens": 8},
                "models": [{"name": "sim-small"}],
            }
        ],
        "routes": [{"name": "fast", "targets": ["simulator/sim-small"]}],
    }


@contextmanager
def _started(
    tmp: Path, config: dict[str, Any], commands: list[tuple[list[str], str]]
) -> Iterator[list[Proc]]:
    """Start every (arguments, data directory) at once; stop them all afterwards."""
    config_path = tmp / "relaygate.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}
    env.update(
        {
            "RELAYGATE_DEFAULT_KEY": TENANT_KEY,
            "RELAYGATE_ADMIN_KEY": ADMIN_KEY,
            "RELAYGATE_MASTER_KEY": new_master_key(),
            "PYTHONUNBUFFERED": "1",
        }
    )
    procs: list[Proc] = []
    try:
        for index, (arguments, data_dir) in enumerate(commands):
            port = free_port() if arguments[0] == "serve" else None
            log = tmp / f"process-{index}.log"
            command = [sys.executable, "-m", "relaygate", *arguments, "--config", str(config_path)]
            popen = subprocess.Popen(
                [*command, *(["--port", str(port)] if port else [])],
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                env={**env, "RELAYGATE_DATA_DIR": str(tmp / data_dir)},
            )
            procs.append(Proc(popen, log, port))
        yield procs
    finally:
        for proc in procs:
            proc.popen.terminate()
        for proc in procs:
            try:
                proc.popen.wait(30)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(10)


def _wait_all_up(procs: list[Proc]) -> None:
    """Every server answers /readyz 200 and every worker says it runs jobs; none exits."""
    pending = list(procs)
    deadline = time.monotonic() + DEADLINE_S
    while pending:
        for proc in list(pending):
            if proc.popen.poll() is not None:
                pytest.fail(f"a process exited during the start:\n{proc.output()}")
            if proc.port is None:
                up = "relaygate worker running" in proc.output()
            else:
                try:
                    url = f"http://127.0.0.1:{proc.port}/readyz"
                    up = httpx.get(url, timeout=2).status_code == 200
                except httpx.TransportError:
                    up = False
            if up:
                pending.remove(proc)
        if pending and time.monotonic() > deadline:
            late = pending[0].output()
            pytest.fail(f"{len(pending)} processes not up after {DEADLINE_S} s:\n{late}")
        time.sleep(0.2)


def _assert_all_serve(servers: list[Proc]) -> None:
    for proc in servers:
        response = httpx.post(
            f"http://127.0.0.1:{proc.port}/v1/chat/completions",
            headers={"Authorization": f"Bearer {TENANT_KEY}"},
            json={"model": "fast", "messages": [{"role": "user", "content": "hello"}]},
            timeout=30,
        )
        assert response.status_code == 200, (response.text, proc.output())
        assert response.json()["choices"][0]["message"]["content"]


def _assert_workers_run_jobs(server: Proc) -> None:
    """The gateway runs no jobs itself here, so a finished job was run by a worker."""
    base = f"http://127.0.0.1:{server.port}/v1/jobs"
    headers = {"Authorization": f"Bearer {TENANT_KEY}"}
    body = {
        "url": "/v1/chat/completions",
        "body": {"model": "fast", "messages": [{"role": "user", "content": "job"}]},
    }
    created = httpx.post(base, json=body, headers=headers, timeout=10)
    assert created.status_code in (200, 201, 202), created.text
    job_id = created.json()["id"]
    deadline = time.monotonic() + 60
    while True:
        job = httpx.get(f"{base}/{job_id}", headers=headers, timeout=10).json()
        if job["status"] in {"succeeded", "failed", "cancelled"}:
            break
        assert time.monotonic() < deadline, f"job still {job['status']}"
        time.sleep(0.2)
    assert job["status"] == "succeeded", job


def _assert_no_traceback(procs: list[Proc]) -> None:
    for proc in procs:
        assert "Traceback" not in proc.output(), proc.output()


async def _key_rows(database_url: str) -> list[tuple[str, str | None]]:
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        rows = await connection.fetch("SELECT kind, tenant_id FROM api_keys ORDER BY kind")
        return [(row["kind"], row["tenant_id"]) for row in rows]
    finally:
        await connection.close()


@pytest.mark.slow
@pytest.mark.parametrize("round_", [1, 2])
def test_ten_replicas_and_two_workers_start_together_on_empty_postgresql(
    round_: int, tmp_path: Path, redis_url: str
) -> None:
    commands = [(["serve"], f"data-{i}") for i in range(REPLICAS)]
    commands += [(["worker"], f"worker-{i}") for i in range(WORKERS)]
    with postgres_database() as database_url:
        config = _config(database_url, redis_url, unique_prefix())
        with _started(tmp_path, config, commands) as procs:
            _wait_all_up(procs)
            servers = [p for p in procs if p.port is not None]
            _assert_all_serve(servers)
            _assert_workers_run_jobs(servers[round_ % len(servers)])
            _assert_no_traceback(procs)
        # The configured keys were stored once, whoever came first.
        assert asyncio.run(_key_rows(database_url)) == [("admin", None), ("tenant", "default")]


@pytest.mark.slow
def test_a_server_with_workers_and_a_job_worker_start_together_on_empty_sqlite(
    tmp_path: Path, redis_url: str
) -> None:
    config = _config(None, redis_url, unique_prefix())
    commands = [(["serve", "--workers", "3"], "data"), (["worker"], "data"), (["worker"], "data")]
    with _started(tmp_path, config, commands) as procs:
        _wait_all_up(procs)
        server = procs[0]
        # Several requests, so that more than one of the server's workers answers.
        _assert_all_serve([server] * 6)
        _assert_workers_run_jobs(server)
        _assert_no_traceback(procs)
