"""Jobs survive crashes: a worker killed with SIGKILL mid-job (the job finishes once, on
another worker, with one webhook message id), a gateway killed right after its 202 (the job
still runs after the restart), and the Redis-stream queue shared by separate worker processes."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.jobs.helpers import auth, chat_job, create, jobs_config, start_worker, wait_finished
from tests.support.admin import Admin
from tests.support.gateway import RunningGateway, start_gateway
from tests.support.servers import serve_in_thread
from tests.support.services import unique_prefix
from tests.webhooks.receiver import Receiver

SLOW_SIM = {
    "name": "slowsim",
    "type": "simulator",
    "simulator": {"ttft_ms": 2500, "tokens_per_s": 1000, "max_reply_tokens": 8},
    "models": [{"name": "slow", "capabilities": ["chat", "streaming"]}],
}


def _config(openai_base: str, **jobs: Any) -> dict[str, Any]:
    config = jobs_config(openai_base, **jobs)
    config["providers"].append(SLOW_SIM)
    config["webhooks"] = {"poll_interval_s": 0.1, "schedule_s": [0.3, 0.3]}
    return config


def _wait_status(gw: RunningGateway, job_id: str, status: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{gw.v1}/jobs/{job_id}", headers=auth(gw.key)).json()["status"] != status:
        assert time.monotonic() < deadline, f"job never {status}"
        time.sleep(0.05)


def _usage_rows(data_dir: Path, job_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(data_dir / "relaygate.db") as db:
        return db.execute(
            "SELECT request_id, outcome FROM usage_records WHERE request_id LIKE ?",
            (job_id + ".%",),
        ).fetchall()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    hooks = Receiver()
    with serve_in_thread(hooks.app()) as url:
        yield hooks, url


def test_a_worker_killed_mid_job_leaves_it_to_another_which_finishes_it_once(
    tmp_path: Path,
    fake_openai: tuple[FakeOpenAI, str],
    redis_url: str,
    receiver: tuple[Receiver, str],
) -> None:
    hooks, hook_url = receiver
    config = _config(fake_openai[1], queue="redis", run_in_gateway=False)
    config["server"]["redis_url"] = redis_url
    config["server"]["redis_prefix"] = unique_prefix()
    gw = start_gateway(tmp_path, config, env={"FAKE_OPENAI_KEY": API_KEY})
    first = start_worker(gw, "first")
    second = None
    try:
        secret = Admin(gw).call(
            "POST",
            "/tenants/default/webhook-endpoints",
            {"url": hook_url + "/ok", "allow_private": ["127.0.0.1/32"]},
        )["secret"]
        job = create(gw, chat_job(model="slowsim/slow", callback_url=hook_url + "/ok")).json()
        _wait_status(gw, job["id"], "running")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = start_worker(gw, "second")
        done = wait_finished(gw, job["id"], timeout=30)
        assert done["status"] == "succeeded" and done["attempts"] == 2, done
        assert done["result"]["object"] == "chat.completion"
        deadline = time.monotonic() + 10
        while not hooks.to("/ok"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1)  # a duplicate delivery would have arrived by now
        deliveries = hooks.to("/ok")
        assert len(deliveries) == 1
        assert deliveries[0].headers["webhook-id"] == "msg_" + job["id"].removeprefix("job_")
        assert (
            Webhook(secret).verify(deliveries[0].body, deliveries[0].headers)["data"]["id"]
            == (job["id"])
        )
        # Only the second attempt produced an answer: one successful usage record.
        assert [outcome for _, outcome in _usage_rows(gw.data_dir, job["id"])] == ["ok"]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(15)
        gw.stop()


def test_separate_workers_share_the_redis_queue(
    tmp_path: Path, fake_openai: tuple[FakeOpenAI, str], redis_url: str
) -> None:
    config = _config(fake_openai[1], queue="redis", run_in_gateway=False, concurrency=4)
    config["server"]["redis_url"] = redis_url
    config["server"]["redis_prefix"] = unique_prefix()
    gw = start_gateway(tmp_path, config, env={"FAKE_OPENAI_KEY": API_KEY})
    workers = [start_worker(gw, f"w{i}") for i in range(2)]
    try:
        ids = [create(gw, chat_job(text=f"n{i}")).json()["id"] for i in range(40)]
        results = [wait_finished(gw, job_id) for job_id in ids]
        assert all(r["status"] == "succeeded" and r["attempts"] == 1 for r in results)
        texts = {r["result"]["choices"][0]["message"]["content"] for r in results}
        assert texts == {f"echo: n{i}" for i in range(40)}
        logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
        assert all("Traceback" not in log for log in logs)
    finally:
        for worker in workers:
            worker.terminate()
            assert worker.wait(15) == 0
        gw.stop()


def test_a_gateway_killed_right_after_its_202_still_runs_the_job(
    tmp_path: Path, fake_openai: tuple[FakeOpenAI, str]
) -> None:
    config = _config(fake_openai[1])
    gw = start_gateway(tmp_path, config, env={"FAKE_OPENAI_KEY": API_KEY})
    response = create(gw, chat_job(model="slowsim/slow"))
    gw.process.send_signal(signal.SIGKILL)
    gw.process.wait(10)
    assert response.status_code == 202
    job_id = response.json()["id"]
    again = start_gateway(tmp_path, config, env={"FAKE_OPENAI_KEY": API_KEY})
    try:
        done = wait_finished(again, job_id, timeout=30)
        assert done["status"] == "succeeded", done
        assert done["result"]["choices"][0]["message"]["content"]
    finally:
        again.stop()
