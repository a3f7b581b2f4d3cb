"""Shared pieces of the jobs tests: a configuration with short leases, and polling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx

from tests.fakes.openai import API_KEY as FAKE_KEY
from tests.support.gateway import RunningGateway, suite_config

FAST_JOBS = {
    "lease_s": 2,
    "sweep_interval_s": 0.3,
    "retry_base_s": 0.1,
    "retry_max_s": 0.3,
    "max_attempts": 3,
}


def jobs_config(openai_base: str, **jobs: Any) -> dict[str, Any]:
    """The suite's providers with quick job leases, sweeps and retries."""
    config = suite_config(openai_base)
    config["jobs"] = {**FAST_JOBS, **jobs}
    return config


def chat_job(model: str = "gpt-echo", text: str = "hello", **extra: Any) -> dict[str, Any]:
    """A job body for a chat completion."""
    return {
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}]},
        **extra,
    }


def auth(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def create(
    gw: RunningGateway, payload: Any, key: str | None = None, **headers: str
) -> httpx.Response:
    return httpx.post(
        gw.v1 + "/jobs", json=payload, headers=auth(key or gw.key, **headers), timeout=10
    )


def wait_finished(
    gw: RunningGateway, job_id: str, key: str | None = None, timeout: float = 30
) -> dict[str, Any]:
    """Poll until the job is final; returns its JSON."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{gw.v1}/jobs/{job_id}", headers=auth(key or gw.key), timeout=10)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in {"succeeded", "failed", "cancelled"}:
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(0.1)


def start_worker(gw: RunningGateway, name: str = "worker") -> subprocess.Popen[bytes]:
    """A `relaygate worker` process sharing the gateway's configuration, data and database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}
    env.update(
        {
            "RELAYGATE_DATA_DIR": str(gw.data_dir),
            "PYTHONUNBUFFERED": "1",
            "FAKE_OPENAI_KEY": FAKE_KEY,
        }
    )
    log = (gw.data_dir.parent / f"{name}.log").open("ab")
    config = gw.data_dir.parent / "relaygate.yaml"
    process = subprocess.Popen(
        [sys.executable, "-m", "relaygate", "worker", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 30
    log_path = gw.data_dir.parent / f"{name}.log"
    while b"relaygate worker running" not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start:\n{log_path.read_text()}")
        time.sleep(0.05)
    return process
