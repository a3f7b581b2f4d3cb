"""Paced budgets as a client of a real gateway process sees them: which deployment serves the
request, and the pace factor in the routing debug header.

Three simulated providers serve the same model at different prices. Each route lists the dearer
deployment first, and the order written is given the weight that latency would otherwise have
(latency itself is left out: the simulator's timings are too even to decide anything, and too
noisy to decide the same thing twice). So on "wide" the cheap deployment wins unless price
counts less than usual, and on "close" the dearer one wins unless price counts more.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.admin import Admin
from tests.support.gateway import RunningGateway, start_gateway

MAX_SCALE = 16.0


def _provider(name: str, output_price: float) -> dict[str, Any]:
    return {
        "name": name,
        "type": "simulator",
        "simulator": {"ttft_ms": 0, "tokens_per_s": 2000, "max_reply_tokens": 8},
        "models": [{"name": "sim", "input_price": 0.0, "output_price": output_price}],
    }


def _config() -> dict[str, Any]:
    return {
        "budgets": {"reserve_output_tokens": 4},
        "routing": {
            "debug_header": True,
            # Scores: "wide": premium 2 x scale (4x the price), thrifty 1 (written second);
            # "close": middle 0.58 x scale (1.5x the price), thrifty 1.
            "weights": {"latency": 0.0, "order": 1.0},
            # A horizon this short makes any distance from the pace line press to the bound, so
            # the factor does not depend on the time of day the test runs at.
            "pacing": {"gain": 8.0, "horizon": 1e-6, "max_scale": MAX_SCALE},
        },
        "providers": [
            _provider("thrifty", 1000.0),
            _provider("middle", 1500.0),
            _provider("premium", 4000.0),
        ],
        "routes": [
            {"name": "wide", "targets": ["premium/sim", "thrifty/sim"]},
            {"name": "close", "targets": ["middle/sim", "thrifty/sim"]},
        ],
    }


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path_factory.mktemp("pacing"), _config())
    yield running
    running.stop()


@pytest.fixture(scope="module")
def admin(gw: RunningGateway) -> Admin:
    return Admin(gw)


def _tenant_key(admin: Admin, **budget: Any) -> tuple[str, str, dict[str, Any]]:
    """A new tenant with one daily tenant budget: its id, a key, and the budget."""
    tenant = admin.tenant()
    created = admin.call(
        "POST", f"/tenants/{tenant}/budgets", {"scope": "tenant", "period": "day", **budget}
    )
    return tenant, admin.key(tenant)["key"], created


def _ask(gw: RunningGateway, key: str, model: str) -> httpx.Response:
    response = httpx.post(
        gw.v1 + "/chat/completions",
        json={"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def _pace(response: httpx.Response) -> float | None:
    """The pace factor the debug header shows, or None when it shows none."""
    debug = response.headers["x-relaygate-route-debug"]
    if not debug.startswith("pace="):
        assert "pace=" not in debug, debug
        return None
    return float(debug.split(";", 1)[0].removeprefix("pace="))


def test_ahead_of_pace_the_cheapest_deployment_serves(gw: RunningGateway, admin: Admin) -> None:
    # $0.001 a day: the request's own reservation (4 tokens at up to $1,500 per million, $0.006)
    # is already far past the line, however much of the day has gone. Soft, so it admits.
    budget = {"limit_usd": 0.001, "hard": False}
    _, plain, _ = _tenant_key(admin, **budget)
    _, paced, _ = _tenant_key(admin, **budget, pace=True)
    unpaced = _ask(gw, plain, "close")
    assert unpaced.headers["x-relaygate-provider"] == "middle"
    assert _pace(unpaced) is None
    for _ in range(2):  # and it stays ahead once the first request's spend is recorded
        pressed = _ask(gw, paced, "close")
        assert pressed.headers["x-relaygate-provider"] == "thrifty", pressed.headers
        assert _pace(pressed) == MAX_SCALE


def test_behind_pace_the_dearer_deployment_serves_until_pacing_is_turned_off(
    gw: RunningGateway, admin: Admin
) -> None:
    # $1,000,000 a day and nothing spent: behind the line from the first moments of the day.
    budget = {"limit_usd": 1_000_000}
    _, plain, _ = _tenant_key(admin, **budget)
    tenant, paced, created = _tenant_key(admin, **budget, pace=True)
    unpaced = _ask(gw, plain, "wide")
    assert unpaced.headers["x-relaygate-provider"] == "thrifty"
    assert _pace(unpaced) is None
    relaxed = _ask(gw, paced, "wide")
    assert relaxed.headers["x-relaygate-provider"] == "premium", relaxed.headers
    assert _pace(relaxed) == 1 / MAX_SCALE
    admin.call("PATCH", f"/tenants/{tenant}/budgets/{created['id']}", {"pace": False})
    after = _ask(gw, paced, "wide")
    assert after.headers["x-relaygate-provider"] == "thrifty"
    assert _pace(after) is None
