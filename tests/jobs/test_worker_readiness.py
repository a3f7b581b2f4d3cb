"""`/readyz` says whether queued jobs can be taken (issue 31, defect 5; decision 0030).

A gateway whose jobs run only in workers, with no worker running, used to report ready while jobs
stayed queued forever. Real processes: the gateway, `relaygate worker`, Redis."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.jobs.helpers import chat_job, create, jobs_config, start_worker, wait_finished
from tests.support.gateway import RunningGateway, start_gateway

TIMEOUT_S = 3.0


def _ready(gw: RunningGateway) -> dict[str, Any]:
    response = httpx.get(gw.base_url + "/readyz", timeout=5)
    assert response.status_code == 200, response.text  # degraded jobs never fail readiness
    body: dict[str, Any] = response.json()
    return body


def _until(gw: RunningGateway, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        body = _ready(gw)
        if wanted(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def _zcard(url: str, key: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.zcard(key))
    finally:
        client.close()


def test_readiness_reports_whether_a_worker_takes_queued_jobs(
    tmp_path: Path, fake_openai: tuple[FakeOpenAI, str], redis_url: str, prefix: str
) -> None:
    config = jobs_config(
        fake_openai[1],
        queue="redis",
        run_in_gateway=False,
        worker_heartbeat_s=0.2,
        worker_timeout_s=TIMEOUT_S,
    )
    config["server"]["redis_url"] = redis_url
    config["server"]["redis_prefix"] = prefix
    gw = start_gateway(tmp_path, config, env={"FAKE_OPENAI_KEY": API_KEY})
    workers = []
    try:
        # No worker: the data plane is ready, jobs are not; the detail says why and how much waits.
        body = _ready(gw)
        assert body["status"] == "degraded"
        assert body["checks"]["database"] == "ok"
        jobs = body["jobs"]
        assert jobs["state"] == "degraded" and jobs["queue"] == "redis"
        assert jobs["runs_here"] is False and jobs["workers"] == 0
        assert jobs["last_worker_seen_s"] is None
        assert body["checks"]["jobs"].startswith("degraded: no worker has announced itself")

        job_id = create(gw, chat_job(text="waiting")).json()["id"]
        body = _until(gw, lambda b: b["jobs"]["queued"] == 1 and b["jobs"]["oldest_queued_s"] > 0)
        assert "1 queued, the oldest for" in body["checks"]["jobs"]
        deadline = time.monotonic() + 10
        while "queued jobs cannot be taken" not in gw.logs():  # the sweeper tells the operator
            assert time.monotonic() < deadline, gw.logs()
            time.sleep(0.1)

        # A worker starts: it announces itself, readiness flips, the waiting job runs.
        workers.append(start_worker(gw, "first"))
        body = _until(gw, lambda b: b["jobs"]["state"] == "ok")
        assert body["status"] == "ready" and body["jobs"]["workers"] == 1
        assert body["checks"]["jobs"].startswith("ok (1 worker(s) seen")
        assert wait_finished(gw, job_id)["status"] == "succeeded"
        assert _until(gw, lambda b: b["jobs"]["queued"] == 0)["jobs"]["oldest_queued_s"] is None

        # Killed (no goodbye): it counts until its heartbeat is older than the timeout.
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(10)
        body = _until(gw, lambda b: b["jobs"]["state"] == "degraded")
        assert body["jobs"]["last_worker_seen_s"] >= TIMEOUT_S
        assert body["checks"]["jobs"].startswith("degraded: no worker seen for")

        # Stopped gracefully: it withdraws its heartbeat (the killed one's stays, stale), and
        # readiness says so without waiting for the timeout.
        announced = f"{prefix}jobs:workers"
        workers.append(start_worker(gw, "second"))
        _until(gw, lambda b: b["jobs"]["state"] == "ok")
        assert _zcard(redis_url, announced) == 2
        workers[1].terminate()
        assert workers[1].wait(15) == 0
        assert _zcard(redis_url, announced) == 1
        body = _ready(gw)
        assert body["jobs"]["state"] == "degraded" and body["jobs"]["workers"] == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
        gw.stop()


def test_a_gateway_that_runs_its_own_jobs_is_ready_for_them(
    tmp_path: Path, fake_openai: tuple[FakeOpenAI, str], redis_url: str, prefix: str
) -> None:
    config = jobs_config(fake_openai[1], queue="redis", run_in_gateway=True)
    config["server"]["redis_url"] = redis_url
    config["server"]["redis_prefix"] = prefix
    gw = start_gateway(tmp_path, config, env={"FAKE_OPENAI_KEY": API_KEY})
    try:
        body = _until(gw, lambda b: b["jobs"]["workers"] == 1)  # it announces itself too
        assert body["status"] == "ready"
        assert body["jobs"]["state"] == "ok" and body["jobs"]["runs_here"] is True
        assert body["checks"]["jobs"].startswith("ok (run in this process; 0 queued")
    finally:
        gw.stop()
