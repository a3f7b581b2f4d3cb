"""What a gateway does when its Redis is unreachable: the documented fallback, per mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import ADMIN_KEY, start_gateway
from tests.support.servers import free_port


def _config(mode: str) -> dict[str, Any]:
    return {
        "server": {"redis_url": f"redis://127.0.0.1:{free_port()}/0"},
        "limits": {"on_backend_error": mode},
        "providers": [
            {
                "name": "simulator",
                "type": "simulator",
                "simulator": {"ttft_ms": 0, "tokens_per_s": 100000, "max_reply_tokens": 4},
                "models": [{"name": "sim-small"}],
            }
        ],
        "routes": [{"name": "fast", "targets": ["simulator/sim-small"]}],
    }


def _limited_key(base: str) -> str:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    httpx.post(f"{base}/admin/v1/tenants", json={"id": "site"}, headers=admin).raise_for_status()
    key = httpx.post(f"{base}/admin/v1/tenants/site/keys", json={}, headers=admin)
    key.raise_for_status()
    httpx.post(
        f"{base}/admin/v1/tenants/site/limits",
        json={"scope": "key", "subject": key.json()["id"], "rpm": 2},
        headers=admin,
    ).raise_for_status()
    return str(key.json()["key"])


def _chat(base: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/chat/completions",
        json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
    )


@pytest.mark.parametrize(
    ("mode", "statuses"),
    [("local", [200, 200, 429]), ("open", [200, 200, 200]), ("closed", [503, 503, 503])],
)
def test_unreachable_redis_falls_back_as_configured(
    tmp_path: Path, mode: str, statuses: list[int]
) -> None:
    gateway = start_gateway(tmp_path, _config(mode))
    try:
        key = _limited_key(gateway.base_url)
        answers = [_chat(gateway.base_url, key) for _ in range(3)]
        assert [a.status_code for a in answers] == statuses
        if mode == "closed":
            assert answers[0].json()["error"]["code"] == "limiter_unavailable"
        ready = httpx.get(gateway.base_url + "/readyz")
        assert ready.status_code == 200  # degraded, still serving
        assert ready.json()["checks"]["limits"].startswith("degraded")
        logs = gateway.logs()
        assert "backend unreachable (ConnectionError)" in logs
        assert "redis://" not in logs  # the URL (which may carry a password) is never logged
    finally:
        gateway.stop()
