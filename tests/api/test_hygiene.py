"""Secrets stay out of logs, error bodies and the database; a graceful stop loses no usage."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import openai
import psutil
import pytest

from tests.fakes.openai import API_KEY
from tests.support.gateway import RunningGateway, start_gateway


def test_no_secret_in_logs_errors_or_database(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    bodies = []
    for model in ("fakeoai/gpt-401", "fakeoai/gpt-400", "fakeoai/gpt-500", "nope"):
        response = httpx.post(
            gateway.v1 + "/chat/completions",
            headers={"Authorization": f"Bearer {gateway.key}"},
            json={"model": model, "messages": [{"role": "user", "content": "x"}]},
        )
        bodies.append(response.text)
    bodies.append(
        httpx.get(gateway.v1 + "/models", headers={"Authorization": f"Bearer {gateway.key}x"}).text
    )
    secrets = [API_KEY, gateway.key, gateway.admin_key]
    database = (gateway.data_dir / "relaygate.db").read_bytes()
    for secret in secrets:
        assert secret not in gateway.logs()
        assert all(secret not in body for body in bodies)
        assert secret.encode() not in database
    assert "Traceback" not in gateway.logs()


def test_graceful_shutdown_writes_every_usage_record(tmp_path: Path) -> None:
    running = start_gateway(tmp_path, None)
    sdk = openai.OpenAI(base_url=running.v1, api_key=running.key, max_retries=0)
    for i in range(25):
        sdk.chat.completions.create(model="fast", messages=[{"role": "user", "content": str(i)}])
    # uvicorn re-raises SIGTERM after its graceful shutdown, so the exit status is -15.
    assert running.stop() in (0, -15)
    assert "Application shutdown complete" in running.logs()
    with sqlite3.connect(running.data_dir / "relaygate.db") as db:
        assert db.execute("SELECT count(*) FROM usage_records").fetchone()[0] == 25


def test_default_key_is_generated_once_and_shown_once(tmp_path: Path) -> None:
    first = start_gateway(
        tmp_path, None, env={"RELAYGATE_DEFAULT_KEY": "", "RELAYGATE_ADMIN_KEY": ""}
    )
    first.stop()
    banner = first.logs()
    line = next(x for x in banner.splitlines() if "API key (default tenant, shown once)" in x)
    key = line.split(": ", 1)[1].strip()
    assert key.startswith("rg_live_")
    assert "Admin key (shown once): rg_admin_" in banner
    second = start_gateway(
        tmp_path, None, env={"RELAYGATE_DEFAULT_KEY": "", "RELAYGATE_ADMIN_KEY": ""}, key=key
    )
    try:
        assert key not in second.logs()  # not shown again
        models = openai.OpenAI(base_url=second.v1, api_key=key, max_retries=0).models.list()
        assert models.data
    finally:
        second.stop()


def test_operator_key_must_be_long_enough(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="at least 32 characters"):
        start_gateway(tmp_path, None, env={"RELAYGATE_DEFAULT_KEY": "short"}, key="short")


def test_serve_refuses_to_start_without_a_provider_secret(tmp_path: Path) -> None:
    config = {
        "providers": [
            {
                "name": "o",
                "type": "openai",
                "api_key": "env:NOT_SET_ANYWHERE",
                "models": [{"name": "m"}],
            }
        ]
    }
    with pytest.raises(RuntimeError) as info:
        start_gateway(tmp_path, config, env={"RELAYGATE_DEFAULT_KEY": ""})
    output = str(info.value)
    assert "providers[0].api_key: environment variable NOT_SET_ANYWHERE is not set" in output
    assert "shown once" not in output and "Traceback" not in output


def test_serve_with_several_workers(tmp_path: Path) -> None:
    running = start_gateway(tmp_path, None, extra_args=["--workers", "2"])
    try:
        children = psutil.Process(running.process.pid).children(recursive=True)
        assert len([c for c in children if "python" in c.name()]) >= 2
        sdk = openai.OpenAI(base_url=running.v1, api_key=running.key, max_retries=0)
        replies = [
            sdk.chat.completions.create(
                model="fast", messages=[{"role": "user", "content": str(i)}]
            )
            for i in range(10)
        ]
        assert all(r.choices[0].message.content for r in replies)
    finally:
        running.stop()
