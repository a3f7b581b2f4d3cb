"""A real gateway killed with SIGKILL right after answering loses no usage record."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import openai

from relaygate.config.defaults import embedded_default
from tests.support.gateway import start_gateway

REQUESTS = 30


def _config() -> dict[str, Any]:
    config = embedded_default()
    simulator = config["providers"][0]["simulator"]
    simulator.update(ttft_ms=0, tokens_per_s=5000, max_reply_tokens=8)
    return config


def _stored(database: Path) -> Counter[str]:
    with sqlite3.connect(database) as db:
        return Counter(row[0] for row in db.execute("SELECT request_id FROM usage_records"))


def test_requests_answered_before_a_kill_are_recorded_after_the_restart(tmp_path: Path) -> None:
    first = start_gateway(tmp_path, _config())
    try:
        client = openai.OpenAI(base_url=first.v1, api_key=first.key, max_retries=0)
        request_ids = []
        for n in range(REQUESTS):
            raw = client.chat.completions.with_raw_response.create(
                model="fast", messages=[{"role": "user", "content": f"question {n}"}]
            )
            assert raw.http_response.status_code == 200
            request_ids.append(raw.headers["x-request-id"])
    finally:
        first.process.kill()
        first.process.wait(10)

    second = start_gateway(tmp_path, _config())
    try:
        stored = _stored(second.data_dir / "relaygate.db")
    finally:
        second.stop()
    assert {request_id: stored[request_id] for request_id in request_ids} == dict.fromkeys(
        request_ids, 1
    )
    assert list((second.data_dir / "usage-journal").glob("*.jsonl")) == []
