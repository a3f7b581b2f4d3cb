"""Shared pieces of the jobs tests: a configuration with short leases, and polling."""

from __future__ import annotations

import time
from typing import Any

import httpx

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
