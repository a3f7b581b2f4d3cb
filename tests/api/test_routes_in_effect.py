"""A configuration file replaces the embedded default whole: the start log names the routes in
effect, and says which built-in routes (`fast`, ...) a client will not find (issue 31)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from relaygate.config.loader import load_config, log_routes_in_effect
from tests.support.gateway import RunningGateway, start_gateway

NO_ROUTES = {
    "providers": [
        {"name": "simulator", "type": "simulator", "models": [{"name": "sim-small"}]},
    ]
}


def test_the_start_log_names_the_routes_of_the_file(gateway: RunningGateway) -> None:
    logs = gateway.logs()
    assert "routes in effect: fast, failover, no-failover" in logs
    assert "the built-in route(s) smart, auto of the default configuration are not in effect" in (
        logs
    )


def test_a_file_without_routes_warns_and_the_built_in_name_is_a_404(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, NO_ROUTES)
    try:
        logs = gw.logs()
        assert '"level":"warning","logger":"relaygate.config"' in logs  # JSON lines by default
        assert "declares no routes: clients must name a model as provider/model" in logs
        assert "fast, smart, auto of the default configuration are not in effect" in logs
        answer = httpx.post(
            gw.v1 + "/chat/completions",
            headers={"Authorization": f"Bearer {gw.key}"},
            json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "model_not_found"
    finally:
        gw.stop()


def test_the_embedded_default_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="relaygate.config"):
        log_routes_in_effect(load_config(None, environ={}), None)
    assert caplog.records == []
